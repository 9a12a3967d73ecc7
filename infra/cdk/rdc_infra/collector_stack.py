"""The collector on ECS Fargate: one task holding the Rithmic login, plus the one-off migration task."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from .archive import ArchiveJob
from .config import InfraConfig
from .data_stack import POSTGRES_PORT, DataStack
from .nag import acknowledge
from .network_stack import COMPUTE, HTTPS, NetworkStack

METRICS_NAMESPACE = "RithmicDataCollector"

# Never part of the image's build context: virtualenvs, VCS data and synth output are large and
# would make every synth re-hash gigabytes.
IMAGE_EXCLUDES = [
    ".git",
    ".venv",
    "**/.venv",
    ".local",
    "**/node_modules",
    "**/cdk.out",
    "**/chalice.out",
    "**/__pycache__",
    "**/*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "**/.chalice/deployments",
]


class CollectorStack(Stack):
    """ECS cluster, the collector service and the migration task definition.

    Deployment limits of 0 % / 100 % mean ECS stops the old task before starting the new one:
    Rithmic allows one session per login, and two tasks would knock each other off.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkStack,
        data: DataStack,
        config: InfraConfig,
        image_directory: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        vpc = network.vpc

        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)

        self.security_group = ec2.SecurityGroup(
            self,
            "CollectorSecurityGroup",
            vpc=vpc,
            description="Collector tasks: no ingress; out to Rithmic, PostgreSQL, Redis, AWS APIs",
            allow_all_outbound=False,
        )
        # Rithmic's gateways speak WebSocket over TLS on 443; the same rule covers ECR/S3 via the
        # NAT or gateway endpoint. This is egress only: nothing may connect in.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "Rithmic (wss) and AWS APIs")
        data.allow_database(self.security_group, "Collector to PostgreSQL")
        data.allow_redis(self.security_group, "Collector to Redis")
        network.allow_endpoints(self.security_group, "Collector to AWS API endpoints")

        self.log_group = logs.LogGroup(self, "LogGroup", retention=config.log_retention)

        # Synth only hashes this directory and copies it into cdk.out; `cdk deploy` builds it.
        self.image = ecs.ContainerImage.from_asset(
            image_directory,
            file=config.collector_dockerfile,
            exclude=IMAGE_EXCLUDES,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )

        db = data.database
        database_environment = {
            "DB_HOST": db.db_instance_endpoint_address,
            "DB_PORT": str(POSTGRES_PORT),
            "DB_NAME": config.db_name,
            "DB_SSLMODE": "require",
        }
        database_secrets = {
            "DB_USER": ecs.Secret.from_secrets_manager(data.database_secret, "username"),
            "DB_PASSWORD": ecs.Secret.from_secrets_manager(data.database_secret, "password"),
        }

        # --- The service --------------------------------------------------------------------
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=config.collector_cpu,
            memory_limit_mib=config.collector_memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
                cpu_architecture=ecs.CpuArchitecture.X86_64,
            ),
        )
        self.container = self.task_definition.add_container(
            "collector",
            image=self.image,
            essential=True,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="collector", log_group=self.log_group),
            environment={
                **database_environment,
                "REDIS_HOST": data.redis_host,
                "REDIS_PORT": str(data.redis_port),
                "REDIS_SSL": "true",
                # No password in the URL: it comes from REDIS_PASSWORD (an ECS secret).
                "REDIS_URL": Fn.join("", ["rediss://", data.redis_host, f":{data.redis_port}/0"]),
                "SYMBOLS": config.symbols,
                "RITHMIC_SYSTEM_NAME": config.rithmic_system_name,
                "RITHMIC_URL": config.rithmic_url,
                "RITHMIC_APP_NAME": config.rithmic_app_name,
                "RITHMIC_APP_VERSION": config.rithmic_app_version,
                # Only the ARN (collector_ecs.config reads RITHMIC_SECRET_ID): on a login failure
                # the collector re-reads the secret, so new credentials need no redeploy.
                "RITHMIC_SECRET_ID": data.rithmic_secret.secret_arn,
                "METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_FORMAT": "json",
            },
            secrets={
                **database_secrets,
                "RITHMIC_USER": ecs.Secret.from_secrets_manager(data.rithmic_secret, "user"),
                "RITHMIC_PASSWORD": ecs.Secret.from_secrets_manager(data.rithmic_secret, "password"),
                "REDIS_PASSWORD": ecs.Secret.from_secrets_manager(data.redis_auth_secret),
            },
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-m", "collector_ecs", "healthcheck"],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(10),
                retries=3,
                # Login, subscription and the first flush take a while after a cold start.
                start_period=Duration.seconds(120),
            ),
            # Fargate's maximum: time to flush the queue and the spool to PostgreSQL on SIGTERM.
            stop_timeout=Duration.seconds(120),
        )
        # The service never touches the archive bucket: the archive task below has its own role.
        data.rithmic_secret.grant_read(self.task_definition.task_role)

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=1,
            min_healthy_percent=0,
            max_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_group_name=COMPUTE),
            assign_public_ip=False,
            platform_version=ecs.FargatePlatformVersion.LATEST,
        )

        # --- One-off schema migration from sql/ -------------------------------------------
        self.migration_task_definition = ecs.FargateTaskDefinition(
            self,
            "MigrationTaskDefinition",
            cpu=256,
            memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
                cpu_architecture=ecs.CpuArchitecture.X86_64,
            ),
        )
        self.migration_task_definition.add_container(
            "migrate",
            image=self.image,
            essential=True,
            command=["python", "-m", "collector_ecs", "migrate"],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="migrate", log_group=self.log_group),
            environment={**database_environment, "LOG_FORMAT": "json"},
            secrets={
                **database_secrets,
                # The migration sets the API role's password from its secret (sql/002_roles.sql
                # creates rdc_api without one).
                "RDC_API_DB_PASSWORD": ecs.Secret.from_secrets_manager(data.api_database_secret, "password"),
            },
            stop_timeout=Duration.seconds(30),
        )

        # --- The daily archive: closed days to Parquet in S3, then retention -----------------
        self.archive = ArchiveJob(
            self, "Archive", cluster=self.cluster, image=self.image, vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_group_name=COMPUTE), bucket=data.archive_bucket,
            prefix=data.archive_prefix, database_environment=database_environment, database_secrets=database_secrets,
            log_group=self.log_group, cron=config.archive_cron, timezone=config.market_timezone,
            retention_days={"tick_data": config.retention_days_ticks, "quote_data": config.retention_days_quotes,
                            "level2_data": config.retention_days_level2},
        )
        data.allow_database(self.archive.security_group, "Archive task to PostgreSQL")
        network.allow_endpoints(self.archive.security_group, "Archive task to AWS API endpoints")

        CfnOutput(self, "ArchiveTaskDefinitionArn", value=self.archive.task_definition.task_definition_arn)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=self.service.service_name)
        CfnOutput(self, "MigrationTaskDefinitionArn", value=self.migration_task_definition.task_definition_arn)
        CfnOutput(self, "TaskSecurityGroup", value=self.security_group.security_group_id)
        CfnOutput(self, "LogGroupName", value=self.log_group.log_group_name)

        for task_definition in (self.task_definition, self.migration_task_definition):
            acknowledge(
                task_definition.obtain_execution_role(),
                "ecr:GetAuthorizationToken has no resource-level permissions; every other action in "
                "the execution role is scoped to the image repository, log group and secrets.",
                "AwsSolutions-IAM5[Resource::*]",
            )
            acknowledge(
                task_definition,
                "Plain environment holds only non-secret settings (hosts, ports, names, symbols, "
                "ARNs); every password is injected from Secrets Manager through `secrets`.",
                "AwsSolutions-ECS2",
            )
