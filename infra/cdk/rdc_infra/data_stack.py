"""Everything that holds state: PostgreSQL (+ RDS Proxy), Redis, the archive bucket and the secrets."""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .archive import ArchiveCatalog, archive_url
from .config import InfraConfig
from .nag import acknowledge
from .network_stack import DATA, deny_default_egress

POSTGRES_PORT = 5432
# A concrete minor: RDS no longer creates instances from a bare "16". Minor upgrades after that
# are automatic (auto_minor_version_upgrade), and CloudFormation ignores the drift.
POSTGRES_ENGINE = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16_13)
# A non-default port costs nothing and keeps drive-by scans for 6379 from even finding it.
REDIS_PORT = 6380
DB_ADMIN_USER = "rdc_admin"
# The role sql/002_roles.sql creates; the migration task gives it a password from its secret.
DB_API_USER = "rdc_api"

# Logical IDs of the stateful resources. A changed logical ID makes CloudFormation replace the
# resource (a new, empty database), so these are pinned and asserted by tests/infra.
STATEFUL_LOGICAL_IDS = {
    "database": "RdcDatabase",
    "database_secret": "RdcDatabaseSecret",
    "api_database_secret": "RdcApiDatabaseSecret",
    "redis": "RdcRedis",
    "redis_auth_secret": "RdcRedisAuthSecret",
    "archive_bucket": "RdcArchiveBucket",
    "athena_results_bucket": "RdcAthenaResultsBucket",
    "rithmic_secret": "RdcRithmicSecret",
    "api_keys_secret": "RdcApiKeysSecret",
}

NO_ROTATION = (
    "Rotation is manual and documented in infra/cdk/README.md: the collector holds one long-lived "
    "Rithmic session and database pool, so a password must change at a moment the operator picks."
)


class DataStack(Stack):
    """Stateful resources, deployed with termination protection and retained on deletion."""

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, config: InfraConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, termination_protection=True, **kwargs)
        data_subnets = ec2.SubnetSelection(subnet_group_name=DATA)

        # --- PostgreSQL -------------------------------------------------------------------
        self.db_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=vpc,
            description="PostgreSQL: the collector, the migration task and RDS Proxy only",
            allow_all_outbound=False,
        )
        parameters = rds.ParameterGroup(
            self,
            "DatabaseParameters",
            engine=POSTGRES_ENGINE,
            description="RithmicDataCollector PostgreSQL 16",
            parameters={"rds.force_ssl": "1"},
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            engine=POSTGRES_ENGINE,
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=vpc,
            vpc_subnets=data_subnets,
            security_groups=[self.db_security_group],
            port=POSTGRES_PORT,
            credentials=rds.Credentials.from_generated_secret(DB_ADMIN_USER),
            database_name=config.db_name,
            parameter_group=parameters,
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=config.db_allocated_storage_gib,
            max_allocated_storage=config.db_max_allocated_storage_gib,
            multi_az=config.db_multi_az,
            backup_retention=Duration.days(config.db_backup_retention_days),
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            auto_minor_version_upgrade=True,
            publicly_accessible=False,
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=config.log_retention,
            copy_tags_to_snapshot=True,
        )
        self.database.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["database"])
        assert self.database.secret is not None
        # `database.secret` is the attachment (it adds host and port); the secret is its parent.
        self.database_secret = self.database.secret
        admin_secret = self.database.node.find_child("Secret")
        admin_secret.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["database_secret"])
        admin_secret.apply_removal_policy(RemovalPolicy.RETAIN)

        # The API's own login: read-only market data, per sql/002_roles.sql.
        api_secret = rds.DatabaseSecret(self, "ApiDatabaseSecret", username=DB_API_USER)
        api_secret.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["api_database_secret"])
        api_secret.apply_removal_policy(RemovalPolicy.RETAIN)
        # Attaching adds host, port and dbname to the secret, so a client needs only its ARN.
        self.api_database_secret = api_secret.attach(self.database)

        self.proxy_security_group = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=vpc,
            description="RDS Proxy: the API Lambda in, PostgreSQL out",
            allow_all_outbound=False,
        )
        deny_default_egress(self.proxy_security_group)
        self.proxy = self.database.add_proxy(
            "Proxy",
            secrets=[self.database_secret, self.api_database_secret],
            vpc=vpc,
            vpc_subnets=data_subnets,
            security_groups=[self.proxy_security_group],
            # CloudFormation requires a name; deriving it from the stack keeps two deployments
            # (dev, prod) in one account from colliding.
            db_proxy_name=f"{self.stack_name}-proxy".lower(),
            require_tls=True,
            # The Lambda authenticates with the rdc_api password from its secret.
            iam_auth=False,
            debug_logging=False,
        )
        self.database.connections.allow_default_port_from(self.proxy, "RDS Proxy to PostgreSQL")

        # --- Redis ------------------------------------------------------------------------
        self.redis_auth_secret = secretsmanager.Secret(
            self,
            "RedisAuthSecret",
            description="Redis AUTH token for RithmicDataCollector",
            # ElastiCache AUTH tokens may be 16-128 printable characters, but not all punctuation.
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=64),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.redis_auth_secret.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["redis_auth_secret"])

        self.redis_security_group = ec2.SecurityGroup(
            self,
            "RedisSecurityGroup",
            vpc=vpc,
            description="Redis: the collector and the API Lambda only",
            allow_all_outbound=False,
        )
        self.redis_connections = ec2.Connections(
            security_groups=[self.redis_security_group], default_port=ec2.Port.tcp(REDIS_PORT)
        )
        redis_subnets = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description="RithmicDataCollector Redis, isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_group_name=DATA).subnet_ids,
        )
        replicated = config.redis_replicas > 0
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description="RithmicDataCollector subscriptions and cache",
            engine="redis",
            engine_version="7.1",
            cache_node_type=config.redis_node_type,
            num_cache_clusters=1 + config.redis_replicas,
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            port=REDIS_PORT,
            cache_subnet_group_name=redis_subnets.ref,
            security_group_ids=[self.redis_security_group.security_group_id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=self.redis_auth_secret.secret_value.unsafe_unwrap(),
            auto_minor_version_upgrade=True,
        )
        self.redis.override_logical_id(STATEFUL_LOGICAL_IDS["redis"])
        self.redis_host = self.redis.attr_primary_end_point_address
        self.redis_port = REDIS_PORT
        if not replicated:
            acknowledge(
                self.redis,
                "A single cache node by default (rdc:redis_replicas=0) to keep the bill small; the "
                "durable subscription set lives in PostgreSQL and Redis is rebuilt from it. Set "
                "rdc:redis_replicas=1 for a Multi-AZ replica.",
                "AwsSolutions-AEC4",
            )

        # --- Archive bucket ---------------------------------------------------------------
        self.archive_bucket = s3.Bucket(
            self,
            "ArchiveBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ArchiveTiering",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        )
                    ],
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        self.archive_bucket.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["archive_bucket"])
        acknowledge(
            self.archive_bucket,
            "Only the collector's task role writes here; object-level audit comes from CloudTrail data "
            "events if the account enables them. A second bucket for access logs would add cost and "
            "would itself need this acknowledgement.",
            "AwsSolutions-S1",
        )

        # Athena's query results: disposable, so they expire; encrypted and private like the archive.
        self.athena_results_bucket = s3.Bucket(
            self,
            "AthenaResultsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireResults", expiration=Duration.days(30),
                                              abort_incomplete_multipart_upload_after=Duration.days(1))],
        )
        self.athena_results_bucket.node.default_child.override_logical_id(
            STATEFUL_LOGICAL_IDS["athena_results_bucket"])
        acknowledge(
            self.athena_results_bucket,
            "Query results only, written by Athena for the workgroup and expired after 30 days; CloudTrail "
            "data events cover object-level audit if the account enables them.",
            "AwsSolutions-S1",
        )
        # SQL over the archive at any scale: Glue tables with partition projection and a workgroup.
        self.archive_prefix = config.archive_prefix.strip("/")
        self.archive_catalog = ArchiveCatalog(
            self, "ArchiveCatalog", bucket=self.archive_bucket, results_bucket=self.athena_results_bucket,
            prefix=self.archive_prefix, name=config.archive_catalog_name)
        CfnOutput(self, "ArchiveUrl", value=archive_url(self.archive_bucket, self.archive_prefix))
        CfnOutput(self, "GlueDatabase", value=config.archive_catalog_name)
        CfnOutput(self, "AthenaWorkgroup", value=config.archive_catalog_name)

        # --- Secrets the operator fills in or the API reads -------------------------------
        self.rithmic_secret = secretsmanager.Secret(
            self,
            "RithmicSecret",
            # Only the login is secret: the gateway, system name and application name are stack
            # context (rdc:rithmic_url, rdc:rithmic_system_name, rdc:rithmic_app_name).
            description="Rithmic login for the collector: JSON {user, password}; put the real ones here",
            # A generated placeholder password keeps any real credential out of the template.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"user": "REPLACE_WITH_RITHMIC_USER"}),
                generate_string_key="password",
                exclude_punctuation=True,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rithmic_secret.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["rithmic_secret"])

        self.api_keys_secret = secretsmanager.Secret(
            self,
            "ApiKeysSecret",
            description="API keys accepted by the RithmicDataCollector API: JSON {name: key}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}),
                generate_string_key="default",
                exclude_punctuation=True,
                password_length=40,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.api_keys_secret.node.default_child.override_logical_id(STATEFUL_LOGICAL_IDS["api_keys_secret"])
        CfnOutput(self, "RithmicSecretArn", value=self.rithmic_secret.secret_arn)
        CfnOutput(self, "ApiKeysSecretArn", value=self.api_keys_secret.secret_arn)

        for secret in (
            admin_secret,
            api_secret,
            self.redis_auth_secret,
            self.rithmic_secret,
            self.api_keys_secret,
        ):
            acknowledge(secret, NO_ROTATION, "AwsSolutions-SMG4")

        # cloudwatch_logs_retention above is enforced by CDK's LogRetention function (one per stack).
        log_retention_function = self.node.find_child("LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a")
        acknowledge(
            log_retention_function,
            "CDK's LogRetention provider: it sets the retention of the RDS-created log group, which "
            "exists only after the instance does; AWSLambdaBasicExecutionRole covers its own logs and "
            "logs:PutRetentionPolicy on '*' is how the provider is written.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "AwsSolutions-IAM5[Resource::*]",
        )
        # On the L1 instance: the proxy is a child of the L2 construct and must not inherit these.
        db_instance = self.database.node.default_child
        acknowledge(
            db_instance,
            "Password authentication through Secrets Manager: the collector's COPY writer and the "
            "migration task connect directly with the admin secret, the Lambda through RDS Proxy.",
            "AwsSolutions-RDS6",
        )
        acknowledge(
            db_instance,
            "RDS Proxy listens on 5432 for PostgreSQL whatever the instance port, so a custom port "
            "hides nothing; the security group admits only the collector and the proxy.",
            "AwsSolutions-RDS11",
        )
        if not config.db_multi_az:
            acknowledge(
                db_instance,
                "Single-AZ by default (rdc:db_multi_az=false) to halve the database bill; automated "
                "backups allow point-in-time restore. Set rdc:db_multi_az=true for a standby.",
                "AwsSolutions-RDS3",
            )

    def allow_database(self, client: ec2.IConnectable, description: str) -> None:
        """Open PostgreSQL to `client`; the rule lands in the client's stack (no dependency cycle)."""
        client.connections.allow_to(self.database, ec2.Port.tcp(POSTGRES_PORT), description)

    def allow_proxy(self, client: ec2.IConnectable, description: str) -> None:
        client.connections.allow_to(self.proxy, ec2.Port.tcp(POSTGRES_PORT), description)

    def allow_redis(self, client: ec2.IConnectable, description: str) -> None:
        client.connections.allow_to(self.redis_connections, ec2.Port.tcp(REDIS_PORT), description)
