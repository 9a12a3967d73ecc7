"""The API stack: the Chalice app in the VPC, the stage's throttling, key, access logs and WAF."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.infra

ENVIRONMENT = {
    "DATABASE_SECRET_ARN",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_URL",
    "REDIS_AUTH_SECRET_ARN",
    "API_KEYS_SECRET_ARN",
}


def _handler(synth):
    return synth.templates["RdcApi"]["Resources"]["APIHandler"]


def test_chalice_app_is_packaged_as_sam(synth):
    body = synth.templates["RdcApi"]
    assert body["Transform"] == "AWS::Serverless-2016-10-31"
    assert body["Resources"]["RestAPI"]["Type"] == "AWS::Serverless::Api"
    assert _handler(synth)["Type"] == "AWS::Serverless::Function"
    (code,) = [a for a in synth.assets("RdcApi")["files"].values() if a["source"]["path"].endswith(".zip")]
    assert (synth.outdir / code["source"]["path"]).is_file()


def test_lambda_runs_in_private_subnets_with_its_own_security_group(synth):
    vpc = _handler(synth)["Properties"]["VpcConfig"]
    assert len(vpc["SubnetIds"]) == 2
    assert all("VpcComputeSubnet" in json.dumps(s) for s in vpc["SubnetIds"])
    (group,) = vpc["SecurityGroupIds"]
    assert group["Fn::GetAtt"][0].startswith("ApiFunctionSecurityGroup")
    assert synth.templates["RdcApi"]["Resources"][group["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::SecurityGroup"


def test_lambda_environment_points_at_proxy_redis_and_secrets(synth):
    variables = _handler(synth)["Properties"]["Environment"]["Variables"]
    assert ENVIRONMENT <= variables.keys()
    assert "DatabaseProxy" in json.dumps(variables["DB_HOST"]) and "Endpoint" in json.dumps(variables["DB_HOST"])
    assert "ApiDatabaseSecretAttachment" in json.dumps(variables["DATABASE_SECRET_ARN"])
    assert "RdcRedisAuthSecret" in json.dumps(variables["REDIS_AUTH_SECRET_ARN"])
    assert "RdcApiKeysSecret" in json.dumps(variables["API_KEYS_SECRET_ARN"])
    assert "rediss://" in json.dumps(variables["REDIS_URL"])
    assert variables["REQUIRE_API_KEY_FOR_WRITES"] == "1"  # subscribe/unsubscribe always keyed in AWS
    # ARNs only: no secret value may sit in the function's configuration.
    assert "{{resolve:" not in json.dumps(variables)


def test_lambda_role_is_ours_with_grants_not_chalice_managed(synth, templates):
    role = _handler(synth)["Properties"]["Role"]
    assert role["Fn::GetAtt"][0].startswith("ApiFunctionRole")
    policies = [p for k, p in synth.resources("RdcApi", "AWS::IAM::Policy").items() if k.startswith("ApiFunctionRole")]
    (policy,) = policies
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # Its secrets, and GetObject on the archive's prefix to presign download links (test_infra_archive.py).
    assert {json.dumps(s["Action"]) for s in statements} == {
        json.dumps(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]), json.dumps("s3:GetObject")
    }
    targets = json.dumps([s["Resource"] for s in statements])
    for secret in ("ApiDatabaseSecretAttachment", "RdcRedisAuthSecret", "RdcApiKeysSecret"):
        assert secret in targets
    assert "RdcDatabaseSecret" not in targets and "DatabaseSecretAttachmentE5" not in targets


def test_stage_has_throttling_metrics_and_access_logs(synth):
    properties = synth.templates["RdcApi"]["Resources"]["RestAPI"]["Properties"]
    assert properties["StageName"] == "api"
    (settings,) = properties["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert settings["ThrottlingRateLimit"] == 20 and settings["ThrottlingBurstLimit"] == 40
    assert settings["MetricsEnabled"] is True and settings["DataTraceEnabled"] is False
    access = properties["AccessLogSetting"]
    assert access["DestinationArn"]["Fn::GetAtt"][0].startswith("AccessLogGroup")
    assert "$context.requestId" in access["Format"] and "$context.status" in access["Format"]
    assert properties["Name"] == "RdcApi-api"


def test_usage_plan_and_api_key(templates):
    api = templates["RdcApi"]
    api.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    api.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    api.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)
    api.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "ApiStages": [{"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}],
            "Throttle": {"RateLimit": 20, "BurstLimit": 40},
            "Quota": {"Limit": 100000, "Period": "DAY"},
        },
    )
    api.has_resource_properties(
        "AWS::ApiGateway::ApiKey",
        {
            "Enabled": True,
            # The same key the app accepts: the "default" entry of the API keys secret.
            "Value": {"Fn::Join": ["", ["{{resolve:secretsmanager:", Match.any_value(), ":SecretString:default::}}"]]},
        },
    )
    api.has_resource_properties("AWS::ApiGateway::Account", {"CloudWatchRoleArn": Match.any_value()})


def test_waf_rate_limits_the_stage(synth, templates):
    api = templates["RdcApi"]
    api.resource_count_is("AWS::WAFv2::WebACL", 1)
    api.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "REGIONAL",
            "DefaultAction": {"Allow": {}},
            "Rules": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Action": {"Block": {}},
                            "Statement": {"RateBasedStatement": {"Limit": 3000, "AggregateKeyType": "IP"}},
                        }
                    )
                ]
            ),
        },
    )
    (association,) = synth.resources("RdcApi", "AWS::WAFv2::WebACLAssociation").values()
    arn = json.dumps(association["Properties"]["ResourceArn"])
    assert '{"Ref": "RestAPI"}' in arn and '{"Ref": "RestAPI.Stage"}' in arn and "/stages/" in arn


def test_api_function_logs_have_retention(synth):
    logging = _handler(synth)["Properties"]["LoggingConfig"]
    group = synth.templates["RdcApi"]["Resources"][logging["LogGroup"]["Ref"]]
    assert group["Properties"]["RetentionInDays"] == 30


def test_throttled_and_quota_answers_say_when_to_retry_in_the_api_error_shape(synth):
    """API Gateway's own 429s carry Retry-After (rdc_client backs off by it) and the API's error shape."""
    responses = {r["Properties"]["ResponseType"]: r["Properties"]
                 for r in synth.resources("RdcApi", "AWS::ApiGateway::GatewayResponse").values()}
    assert {"THROTTLED", "QUOTA_EXCEEDED"} <= responses.keys()
    rest_api = responses["THROTTLED"]["RestApiId"]
    assert rest_api == {"Ref": "RestAPI"}
    for kind, retry_after in (("THROTTLED", "'1'"), ("QUOTA_EXCEEDED", "'3600'")):
        props = responses[kind]
        assert props["RestApiId"] == rest_api and props["StatusCode"] == "429"
        assert props["ResponseParameters"] == {"gatewayresponse.header.Retry-After": retry_after}
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert set(body) == {"error", "message", "request_id"} and body["request_id"] == "$context.requestId"
        assert body["error"] == "Too Many Requests" and body["message"]
