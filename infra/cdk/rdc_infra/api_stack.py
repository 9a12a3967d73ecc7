"""The HTTP API: the Chalice app packaged by `chalice.cdk.Chalice`, in the VPC, behind throttling and WAF."""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Fn, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from chalice.cdk import Chalice
from constructs import Construct

from .archive import archive_url
from .collector_stack import METRICS_NAMESPACE
from .config import InfraConfig
from .data_stack import POSTGRES_PORT, DataStack
from .nag import acknowledge
from .network_stack import COMPUTE, NetworkStack, deny_default_egress

API_GATEWAY_STAGE = "api"
# Logical IDs chalice's SAM template gives the API and its handler (preserved by the construct).
REST_API_ID = "RestAPI"
HANDLER_ID = "APIHandler"

# API Gateway's throttling answers: (response type, Retry-After seconds, message).
THROTTLE_RESPONSES = (
    ("THROTTLED", 1, "Rate limit exceeded; retry after the Retry-After seconds."),
    ("QUOTA_EXCEEDED", 3600, "The daily request quota of this API key is used up; it resets at 00:00 UTC."),
)

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "apiKeyId": "$context.identity.apiKeyId",
        "requestTime": "$context.requestTime",
        "method": "$context.httpMethod",
        "path": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationError": "$context.integration.error",
        "wafStatus": "$context.waf.status",
    },
    separators=(",", ":"),
)


class ApiStack(Stack):
    """Lambda in private subnets (own security group) reaching RDS Proxy and Redis; REST stage with
    method throttling, a usage plan with an API key, JSON access logs and a WAFv2 web ACL."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkStack,
        data: DataStack,
        config: InfraConfig,
        chalice_source_dir: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        vpc = network.vpc

        self.security_group = ec2.SecurityGroup(
            self,
            "ApiFunctionSecurityGroup",
            vpc=vpc,
            description="API Lambda: no ingress; out to RDS Proxy, Redis and AWS API endpoints",
            allow_all_outbound=False,
        )
        if network.endpoint_security_group is not None:
            # All egress is then to other groups; without endpoints the 443 rule is inline instead.
            deny_default_egress(self.security_group)
        data.allow_proxy(self.security_group, "API Lambda to RDS Proxy")
        data.allow_redis(self.security_group, "API Lambda to Redis")
        network.allow_endpoints(self.security_group, "API Lambda to Secrets Manager")

        # Created here rather than by chalice so that access is granted with grant*() calls.
        self.function_role = iam.Role(
            self,
            "ApiFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="RithmicDataCollector API Lambda",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            ],
        )
        data.api_database_secret.grant_read(self.function_role)
        data.redis_auth_secret.grant_read(self.function_role)
        data.api_keys_secret.grant_read(self.function_role)
        # GET /api/archive presigns GET URLs of archived files: the role must itself be allowed to read them
        # (GetObject on the archive's prefix; nothing else of the bucket, not even listing it).
        self.function_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[data.archive_bucket.arn_for_objects(f"{data.archive_prefix}/*")]))
        acknowledge(
            self.function_role,
            "s3:GetObject on the archive's prefix of the archive bucket, the objects download links are presigned "
            "for; a key pattern is how S3 object resources are named.",
            f"AwsSolutions-IAM5[Resource::RdcData:ExportsOutputFnGetAttRdcArchiveBucketArnEE42DA46/"
            f"{data.archive_prefix}/*]",
        )
        acknowledge(
            self.function_role,
            "AWSLambdaVPCAccessExecutionRole is the documented minimum for a VPC Lambda (ENIs and its "
            "own logs); ENI actions cannot be scoped to resources.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
        )

        redis_host = data.redis_host
        environment = {
            "DATABASE_SECRET_ARN": data.api_database_secret.secret_arn,
            # The secret's own host is the instance; the Lambda goes through the proxy instead.
            "DB_HOST": data.proxy.endpoint,
            "DB_PORT": str(POSTGRES_PORT),
            "DB_NAME": config.db_name,
            "DB_SSLMODE": "require",
            "REDIS_HOST": redis_host,
            "REDIS_PORT": str(data.redis_port),
            "REDIS_SSL": "true",
            "REDIS_URL": Fn.join("", ["rediss://", redis_host, f":{data.redis_port}/0"]),
            "REDIS_AUTH_SECRET_ARN": data.redis_auth_secret.secret_arn,
            "API_KEYS_SECRET_ARN": data.api_keys_secret.secret_arn,
            # On the internet, changing what the collector records always takes a key.
            "REQUIRE_API_KEY_FOR_WRITES": "1",
            "POWERTOOLS_SERVICE_NAME": "rdc-api",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "ARCHIVE_URL": archive_url(data.archive_bucket, data.archive_prefix),
        }
        self.chalice = Chalice(
            self,
            "ChaliceApp",
            source_dir=chalice_source_dir,
            # These keys override anything in .chalice/config.json for this deployment.
            stage_config={
                "api_gateway_stage": API_GATEWAY_STAGE,
                "api_gateway_endpoint_type": "REGIONAL",
                "manage_iam_role": False,
                "iam_role_arn": self.function_role.role_arn,
                "subnet_ids": vpc.select_subnets(subnet_group_name=COMPUTE).subnet_ids,
                "security_group_ids": [self.security_group.security_group_id],
                "environment_variables": environment,
                "lambda_memory_size": config.lambda_memory_mib,
                "lambda_timeout": config.lambda_timeout_seconds,
                "automatic_layer": False,
            },
        )
        rest_api = self.chalice.get_resource(REST_API_ID)
        handler = self.chalice.get_resource(HANDLER_ID)
        # The function names its role by ARN, which orders it after the role but not after the
        # role's policy: without this the first cold start could lack its secret grants.
        handler.node.add_dependency(self.function_role.node.find_child("DefaultPolicy"))
        self.function_name = handler.ref
        # Not chalice's log_retention_in_days: its generated log group refers to the handler by a
        # logical ID that its own REST API packaging renames. A group of ours, named by CloudFormation.
        self.function_log_group = logs.LogGroup(self, "FunctionLogGroup", retention=config.log_retention)
        handler.add_property_override("LoggingConfig", {"LogGroup": self.function_log_group.log_group_name})
        self.api_name = f"{self.stack_name}-api"
        self.stage_name = API_GATEWAY_STAGE

        # --- Stage: throttling, metrics, access logs --------------------------------------
        self.access_log_group = logs.LogGroup(self, "AccessLogGroup", retention=config.log_retention)
        rest_api.add_property_override("Name", self.api_name)
        rest_api.add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": config.api_throttle_rate_limit,
                    "ThrottlingBurstLimit": config.api_throttle_burst_limit,
                    "MetricsEnabled": True,
                    "LoggingLevel": "ERROR",
                    # Request/response bodies would put API keys and data into the logs.
                    "DataTraceEnabled": False,
                }
            ],
        )
        rest_api.add_property_override(
            "AccessLogSetting",
            {"DestinationArn": self.access_log_group.log_group_arn, "Format": ACCESS_LOG_FORMAT},
        )

        # API Gateway writes execution logs through one role per account and region.
        cloudwatch_role = iam.Role(
            self,
            "ApiGatewayCloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        account = apigateway.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=cloudwatch_role.role_arn)
        rest_api.node.add_dependency(account)
        acknowledge(
            cloudwatch_role,
            "The AWS-managed policy is the one API Gateway documents for its account-level logging role.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        )

        # SAM resolves `RestAPI.Stage` to the stage it generates, which also orders creation.
        stage_ref = Fn.ref(f"{REST_API_ID}.Stage")

        # --- Usage plan and API key ----------------------------------------------------------
        # The key's value is the "default" entry of the API keys secret, so the key API Gateway
        # meters and the key the app checks are the same string.
        api_key = apigateway.CfnApiKey(
            self,
            "DefaultApiKey",
            enabled=True,
            description="Default RithmicDataCollector API key (value in the API keys secret)",
            value=data.api_keys_secret.secret_value_from_json("default").unsafe_unwrap(),
        )
        usage_plan = apigateway.CfnUsagePlan(
            self,
            "UsagePlan",
            description="RithmicDataCollector API clients",
            api_stages=[apigateway.CfnUsagePlan.ApiStageProperty(api_id=rest_api.ref, stage=stage_ref)],
            throttle=apigateway.CfnUsagePlan.ThrottleSettingsProperty(
                rate_limit=config.api_throttle_rate_limit, burst_limit=config.api_throttle_burst_limit
            ),
            quota=apigateway.CfnUsagePlan.QuotaSettingsProperty(limit=config.api_quota_per_day, period="DAY"),
        )
        apigateway.CfnUsagePlanKey(
            self, "UsagePlanKey", key_id=api_key.ref, key_type="API_KEY", usage_plan_id=usage_plan.ref
        )

        # --- Throttling answers: the API's error shape and a Retry-After ----------------------
        # API Gateway's own 429s (stage/usage-plan throttling, the daily quota) would otherwise be
        # {"message": "Too Many Requests"} with nothing saying when to come back; clients (rdc_client)
        # back off by Retry-After. A used-up quota resets at the start of the next UTC day, so an
        # hour tells a client to stop rather than hammer.
        for response_type, retry_after_s, message in THROTTLE_RESPONSES:
            apigateway.CfnGatewayResponse(
                self,
                f"GatewayResponse{response_type.title().replace('_', '')}",
                rest_api_id=rest_api.ref,
                response_type=response_type,
                status_code="429",
                response_parameters={"gatewayresponse.header.Retry-After": f"'{retry_after_s}'"},
                response_templates={"application/json": json.dumps(
                    {"error": "Too Many Requests", "message": message, "request_id": "$context.requestId"})},
            )

        # --- WAF ----------------------------------------------------------------------------
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("rdc-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=config.waf_rate_limit_per_5min, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=_visibility("rdc-api-rate-limit"),
                ),
                _managed_rule_group("AWSManagedRulesCommonRuleSet", priority=1),
                _managed_rule_group("AWSManagedRulesKnownBadInputsRuleSet", priority=2),
            ],
        )
        association = wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            web_acl_arn=self.web_acl.attr_arn,
            resource_arn=Fn.join(
                "",
                [
                    "arn:",
                    Aws.PARTITION,
                    ":apigateway:",
                    Aws.REGION,
                    "::/restapis/",
                    rest_api.ref,
                    "/stages/",
                    stage_ref,
                ],
            ),
        )

        for resource in (usage_plan, association):
            acknowledge(
                resource,
                "RestAPI.Stage is a reference SAM resolves when it expands the chalice template at "
                "deploy time; the pre-transform check cannot see the stage SAM will create.",
                "CloudFormation-Validate::F1020",
            )

        CfnOutput(self, "ApiKeyId", value=api_key.ref)


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _managed_rule_group(name: str, *, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(vendor_name="AWS", name=name)
        ),
        visibility_config=_visibility(f"rdc-api-{name}"),
    )
