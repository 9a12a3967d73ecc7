"""The Parquet archive in AWS: the daily archive task and its schedule (collector stack), and the Glue
tables and Athena workgroup that let anyone query years of archived data with SQL (data stack).

The layout, the columns and their types come from rdc_common.archive_layout, the module the archiver
writes with, so the Glue tables always describe the files as they are.
"""

from __future__ import annotations

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_athena as athena
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_glue as glue
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from rdc_common.archive_layout import SCHEMAS, TABLES

from .nag import acknowledge

# The first day partition projection offers; queries name the days they want, so an early start costs
# nothing (no partition is listed or scanned that a query does not ask for).
PROJECTION_START = "2020-01-01"
# Athena stops a query after scanning this much (a guard against an unfiltered scan of years of books).
BYTES_SCANNED_CUTOFF = 200 * 1024**3


def archive_url(bucket: s3.IBucket, prefix: str) -> str:
    return f"s3://{bucket.bucket_name}/{prefix.strip('/')}"


class ArchiveCatalog(Construct):
    """A Glue database with one table per archived table, partitioned like the files (date, symbol) with
    partition projection (no crawler, no MSCK REPAIR: Athena computes a partition's location from the
    query's own `date` and `symbol` values), and an Athena workgroup writing encrypted results to their
    own bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, results_bucket: s3.IBucket,
                 prefix: str, name: str) -> None:
        super().__init__(scope, construct_id)
        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=scope.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=name,
                description="RithmicDataCollector's Parquet archive: one file per table, UTC day and symbol"),
        )
        self.database_name = name
        root = archive_url(bucket, prefix)
        self.tables: dict[str, glue.CfnTable] = {}
        for table in TABLES:
            location = f"{root}/{table}"
            t = glue.CfnTable(
                self, f"Table{table.title().replace('_', '')}", catalog_id=scope.account, database_name=name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=table,
                    description=f"{table} rows archived from PostgreSQL (rdc_common/archive_layout.py)",
                    table_type="EXTERNAL_TABLE",
                    partition_keys=[glue.CfnTable.ColumnProperty(name="date", type="string",
                                                                 comment="UTC day, YYYY-MM-DD"),
                                    glue.CfnTable.ColumnProperty(name="symbol", type="string",
                                                                 comment="contract, e.g. ESZ6: every query names it")],
                    parameters={
                        "classification": "parquet",
                        "parquet.compression": "ZSTD",
                        "projection.enabled": "true",
                        "projection.date.type": "date",
                        "projection.date.format": "yyyy-MM-dd",
                        "projection.date.range": f"{PROJECTION_START},NOW",
                        "projection.date.interval": "1",
                        "projection.date.interval.unit": "DAYS",
                        # Contracts come and go (rolls); an injected projection takes the symbol from the
                        # query's WHERE symbol = '...' (or IN (...)) instead of a list kept up to date.
                        "projection.symbol.type": "injected",
                        "storage.location.template": f"{location}/date=${{date}}/symbol=${{symbol}}",
                    },
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=f"{location}/",
                        columns=[glue.CfnTable.ColumnProperty(name=c.name, type=c.glue_type) for c in SCHEMAS[table]],
                        input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
                    ),
                ),
            )
            t.node.add_dependency(self.database)
            self.tables[table] = t

        self.workgroup = athena.CfnWorkGroup(
            self, "Workgroup", name=name, description="Queries over RithmicDataCollector's Parquet archive",
            state="ENABLED", recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{results_bucket.bucket_name}/results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"),
                ),
            ),
        )


class ArchiveJob(Construct):
    """`python -m collector_ecs archive` as a Fargate task of the collector's image, run by EventBridge
    Scheduler in the market's daily break. Its role may read and write the archive's prefix of the bucket
    and nothing else of it; its security group reaches PostgreSQL and HTTPS (S3, ECR, logs) only."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: ecs.ICluster, image: ecs.ContainerImage,
                 vpc: ec2.IVpc, subnets: ec2.SubnetSelection, bucket: s3.IBucket, prefix: str,
                 database_environment: dict, database_secrets: dict, log_group: logs.ILogGroup,
                 retention_days: dict[str, int], cron: str, timezone: str) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Archive task: no ingress; out to PostgreSQL and HTTPS (S3, ECR, CloudWatch Logs)")
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "S3 and AWS APIs")

        self.task_definition = ecs.FargateTaskDefinition(
            self, "TaskDefinition", cpu=1024, memory_limit_mib=4096,
            # A day of the book of a busy contract is a few hundred MB of Parquet, staged on local disk
            # before upload; Fargate's default 20 GiB holds many.
            runtime_platform=ecs.RuntimePlatform(operating_system_family=ecs.OperatingSystemFamily.LINUX,
                                                 cpu_architecture=ecs.CpuArchitecture.X86_64),
        )
        self.container = self.task_definition.add_container(
            "archive", image=image, essential=True,
            command=["python", "-m", "collector_ecs", "archive"],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="archive", log_group=log_group),
            environment={
                **database_environment,
                "ARCHIVE_URL": archive_url(bucket, prefix),
                "RETENTION_DAYS_TICKS": str(retention_days["tick_data"]),
                "RETENTION_DAYS_QUOTES": str(retention_days["quote_data"]),
                "RETENTION_DAYS_LEVEL2": str(retention_days["level2_data"]),
                "LOG_FORMAT": "json",
            },
            # The admin login: retention drops partitions, which only their owner may.
            secrets=database_secrets,
            stop_timeout=Duration.seconds(30),
        )
        # Objects under the prefix only (and listing the bucket, which the grant scopes to the bucket ARN).
        bucket.grant_read_write(self.task_definition.task_role, f"{prefix.strip('/')}/*")

        self.schedule = scheduler.Schedule(
            self, "Schedule",
            description="Archive closed UTC days to Parquet, then apply retention (python -m collector_ecs archive)",
            schedule=scheduler.ScheduleExpression.expression(cron, TimeZone.of(timezone)),
            target=scheduler_targets.EcsRunFargateTask(
                cluster, task_definition=self.task_definition, security_groups=[self.security_group],
                vpc_subnets=subnets, assign_public_ip=False,
                platform_version=ecs.FargatePlatformVersion.LATEST,
                # The job is safe to run again; a lost start is retried, a day late is not a loss.
                retry_attempts=2, max_event_age=Duration.hours(6),
            ),
        )
        acknowledge(
            self.task_definition.task_role,
            "bucket.grant_read_write() on the archive's prefix only: object actions need the prefix's '/*' "
            "resource, and the s3:<verb>* families are CDK's grant, not a broader service grant.",
            "AwsSolutions-IAM5[Action::s3:GetObject*]",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]",
            "AwsSolutions-IAM5[Action::s3:List*]",
            "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
            "AwsSolutions-IAM5[Action::s3:Abort*]",
            f"AwsSolutions-IAM5[Resource::<RdcArchiveBucket.Arn>/{prefix.strip('/')}/*]",
            f"AwsSolutions-IAM5[Resource::RdcData:ExportsOutputFnGetAttRdcArchiveBucketArnEE42DA46/{prefix.strip('/')}/*]",
        )
        acknowledge(
            self.task_definition.obtain_execution_role(),
            "ecr:GetAuthorizationToken has no resource-level permissions; every other action in the execution "
            "role is scoped to the image repository, log group and secrets.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            self.task_definition,
            "Plain environment holds only non-secret settings (hosts, ports, names, the archive URL, retention); "
            "the database login is injected from Secrets Manager through `secrets`.",
            "AwsSolutions-ECS2",
        )
