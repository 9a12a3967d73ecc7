"""Alarms, their SNS topic and one dashboard for the collector, the API and the database."""

from __future__ import annotations

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .collector_stack import METRICS_NAMESPACE
from .config import InfraConfig

GIB = 1024**3


class MonitoringStack(Stack):
    """Six alarms on one encrypted SNS topic, and a dashboard of the collector's EMF metrics.

    CloudWatch alarms have no calendar, so "no ticks while the market is open" is the plain
    RowsWritten alarm whose actions EventBridge Scheduler turns on at the open and off at the
    close (in the exchange's time zone, so DST is handled).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        cluster_name: str,
        service_name: str,
        database: rds.IDatabaseInstance,
        api_name: str,
        api_stage: str,
        api_function_name: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # CloudWatch can publish to an encrypted topic only with a customer-managed key it may use.
        topic_key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="RDC alarm topic")
        topic_key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", master_key=topic_key, enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        alarm_action = cw_actions.SnsAction(self.topic)

        def emf(metric_name: str, statistic: str, **dimensions: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric_name,
                dimensions_map=dimensions or None,
                statistic=statistic,
                period=Duration.minutes(5),
            )

        ticks_written = emf("RowsWritten", "Sum", Table="tick_data")
        self.no_ticks_alarm = ticks_written.create_alarm(
            self,
            "NoTicksAlarm",
            alarm_description="No tick_data rows written for 5 minutes while the market is open.",
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            # A dead collector emits nothing at all, which must page as loudly as zero rows.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            # Off until the first market open; the schedules below take it from there.
            actions_enabled=False,
        )

        running_tasks = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": cluster_name, "ServiceName": service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )
        self.collector_down_alarm = running_tasks.create_alarm(
            self,
            "CollectorNotRunningAlarm",
            alarm_description="The collector service has had no running task for 3 minutes.",
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # Deployments stop the old task before starting the new one: allow that gap.
            evaluation_periods=3,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

        api_5xx = cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name="5XXError",
            dimensions_map={"ApiName": api_name, "Stage": api_stage},
            # Average of a 0/1 per-request metric is the error rate.
            statistic="Average",
            period=Duration.minutes(5),
        )
        self.api_5xx_alarm = api_5xx.create_alarm(
            self,
            "Api5xxRateAlarm",
            alarm_description="More than 5 % of API requests failed with 5xx for 10 minutes.",
            threshold=0.05,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        self.db_cpu_alarm = database.metric_cpu_utilization(period=Duration.minutes(5)).create_alarm(
            self,
            "DatabaseCpuAlarm",
            alarm_description="PostgreSQL CPU above 80 % for 15 minutes.",
            threshold=80,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )
        self.db_storage_alarm = database.metric_free_storage_space(period=Duration.minutes(5)).create_alarm(
            self,
            "DatabaseFreeStorageAlarm",
            alarm_description=f"PostgreSQL free storage below {config.db_free_storage_alarm_gib} GiB.",
            threshold=config.db_free_storage_alarm_gib * GIB,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )

        # The daily archive: a run that failed, or a day past its retention limit that could not be dropped
        # because it is not archived (PostgreSQL keeps growing) must reach a person.
        archive_trouble = cloudwatch.MathExpression(
            expression="FILL(failures, 0) + FILL(blocked, 0)",
            using_metrics={"failures": emf("ArchiveFailures", "Sum"), "blocked": emf("RetentionBlockedDays", "Sum")},
            period=Duration.hours(6),
            label="Archive runs failed + days retention could not drop",
        )
        self.archive_alarm = archive_trouble.create_alarm(
            self,
            "ArchiveAlarm",
            alarm_description="The archive job failed, or retention left an unarchived day in PostgreSQL "
                              "(see the archive task's log: python -m collector_ecs archive).",
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        for alarm in (
            self.archive_alarm,
            self.no_ticks_alarm,
            self.collector_down_alarm,
            self.api_5xx_alarm,
            self.db_cpu_alarm,
            self.db_storage_alarm,
        ):
            alarm.add_alarm_action(alarm_action)

        self._schedule_market_hours(config)

        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        rows = {table: emf("RowsWritten", "Sum", Table=table) for table in ("tick_data", "quote_data", "level2_data")}
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Rows written / 5 min", left=list(rows.values()), width=12),
            cloudwatch.GraphWidget(title="Messages received / 5 min", left=[emf("MessagesReceived", "Sum")], width=12),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Writer queue depth (max)", left=[emf("QueueDepth", "Maximum")], width=8),
            cloudwatch.GraphWidget(title="Spool bytes (max)", left=[emf("SpoolBytes", "Maximum")], width=8),
            cloudwatch.GraphWidget(title="Reconnects", left=[emf("Reconnects", "Sum")], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Collector running tasks", left=[running_tasks], width=8),
            cloudwatch.GraphWidget(
                title="API requests and 5xx rate",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ApiGateway",
                        metric_name="Count",
                        dimensions_map={"ApiName": api_name, "Stage": api_stage},
                        statistic="Sum",
                        period=Duration.minutes(5),
                    )
                ],
                right=[api_5xx],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API Lambda errors and duration",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name="Errors",
                        dimensions_map={"FunctionName": api_function_name},
                        statistic="Sum",
                    )
                ],
                right=[
                    cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name="Duration",
                        dimensions_map={"FunctionName": api_function_name},
                        statistic="p99",
                    )
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="PostgreSQL CPU %", left=[database.metric_cpu_utilization()], width=8),
            cloudwatch.GraphWidget(
                title="PostgreSQL free storage (bytes)", left=[database.metric_free_storage_space()], width=8
            ),
            cloudwatch.GraphWidget(
                title="PostgreSQL connections", left=[database.metric_database_connections()], width=8
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[
                    self.no_ticks_alarm,
                    self.collector_down_alarm,
                    self.api_5xx_alarm,
                    self.db_cpu_alarm,
                    self.db_storage_alarm,
                ],
                width=24,
            ),
        )

    def _schedule_market_hours(self, config: InfraConfig) -> None:
        """Enable the no-ticks alarm's actions at the open, re-arm it, and disable them at the close."""
        alarm_arn = self.no_ticks_alarm.alarm_arn
        alarm_names = {"AlarmNames": [self.no_ticks_alarm.alarm_name]}
        timezone = TimeZone.of(config.market_timezone)

        def cloudwatch_call(action: str, payload: dict) -> scheduler_targets.Universal:
            return scheduler_targets.Universal(
                service="cloudwatch",
                action=action,
                input=scheduler.ScheduleTargetInput.from_object(payload),
                # Scoped to this one alarm instead of the target's default of every resource.
                policy_statements=[iam.PolicyStatement(actions=[f"cloudwatch:{action}"], resources=[alarm_arn])],
                retry_attempts=3,
            )

        def cron(expression: str) -> scheduler.ScheduleExpression:
            # cdk.json holds EventBridge cron text: "cron(min hour dom month dow year)".
            return scheduler.ScheduleExpression.expression(expression, timezone)

        scheduler.Schedule(
            self,
            "MarketOpenEnableAlarm",
            description="Market open: page on missing ticks",
            schedule=cron(config.market_open_cron),
            target=cloudwatch_call("enableAlarmActions", alarm_names),
        )
        # The alarm sat in ALARM through the closed hours; an action fires only on a transition, so
        # reset it to OK a few minutes after the open: if ticks are still missing it re-alarms and pages.
        scheduler.Schedule(
            self,
            "MarketOpenRearmAlarm",
            description="Market open + 10 min: reset the no-ticks alarm so it re-evaluates",
            schedule=cron(_minutes_later(config.market_open_cron, 10)),
            target=cloudwatch_call(
                "setAlarmState",
                {
                    "AlarmName": self.no_ticks_alarm.alarm_name,
                    "StateValue": "OK",
                    "StateReason": "Re-armed at market open by EventBridge Scheduler",
                },
            ),
        )
        scheduler.Schedule(
            self,
            "MarketCloseDisableAlarm",
            description="Market close: no ticks expected",
            schedule=cron(config.market_close_cron),
            target=cloudwatch_call("disableAlarmActions", alarm_names),
        )


def _minutes_later(cron_expression: str, minutes: int) -> str:
    """Shift the minute field of an EventBridge `cron(M H ...)` expression; it must stay in the hour."""
    inner = cron_expression.strip()
    if not (inner.startswith("cron(") and inner.endswith(")")):
        raise ValueError(f"expected an EventBridge cron(...) expression, got {cron_expression!r}")
    parts = inner[5:-1].split()
    minute = int(parts[0]) + minutes
    if len(parts) != 6 or minute > 59:
        raise ValueError(f"cannot add {minutes} minutes to {cron_expression!r}; open on a round hour")
    return "cron(" + " ".join([str(minute), *parts[1:]]) + ")"
