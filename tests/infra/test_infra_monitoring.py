"""Alarms, their topic, the market-hours schedules and the dashboard."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.infra


def _alarm(synth, prefix):
    (alarm,) = [
        v for k, v in synth.resources("RdcMonitoring", "AWS::CloudWatch::Alarm").items() if k.startswith(prefix)
    ]
    return alarm["Properties"]


def test_six_alarms_all_notify_the_encrypted_topic(synth, templates):
    monitoring = templates["RdcMonitoring"]
    monitoring.resource_count_is("AWS::CloudWatch::Alarm", 6)
    monitoring.resource_count_is("AWS::SNS::Topic", 1)
    monitoring.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    monitoring.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    (topic_id,) = synth.resources("RdcMonitoring", "AWS::SNS::Topic")
    for alarm in synth.resources("RdcMonitoring", "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    # No e-mail unless rdc:alarm_email is set.
    monitoring.resource_count_is("AWS::SNS::Subscription", 0)


def test_no_ticks_alarm(synth):
    alarm = _alarm(synth, "NoTicksAlarm")
    assert alarm["Namespace"] == "RithmicDataCollector"
    assert alarm["MetricName"] == "RowsWritten"
    assert alarm["Dimensions"] == [{"Name": "Table", "Value": "tick_data"}]
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300 and alarm["EvaluationPeriods"] == 1
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"
    # Paging is switched on and off by the market-hours schedules, starting switched off.
    assert alarm["ActionsEnabled"] is False


def test_market_hours_schedules_toggle_the_no_ticks_alarm(synth):
    schedules = [s["Properties"] for s in synth.resources("RdcMonitoring", "AWS::Scheduler::Schedule").values()]
    by_action = {json.dumps(s["Target"]["Arn"]).rsplit(":", 1)[-1].strip('"]}'): s for s in schedules}
    assert set(by_action) == {"enableAlarmActions", "setAlarmState", "disableAlarmActions"}
    for schedule in schedules:
        assert schedule["ScheduleExpressionTimezone"] == "America/Chicago"
        assert "NoTicksAlarm" in json.dumps(schedule["Target"]["Input"])
    assert by_action["enableAlarmActions"]["ScheduleExpression"] == "cron(0 17 ? * SUN-THU *)"
    assert by_action["setAlarmState"]["ScheduleExpression"] == "cron(10 17 ? * SUN-THU *)"
    assert by_action["disableAlarmActions"]["ScheduleExpression"] == "cron(0 16 ? * MON-FRI *)"
    # Each schedule's role may touch this one alarm only.
    for policy in synth.resources("RdcMonitoring", "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Resource"] == {"Fn::GetAtt": [statement["Resource"]["Fn::GetAtt"][0], "Arn"]}
            assert statement["Resource"]["Fn::GetAtt"][0].startswith("NoTicksAlarm")


def test_collector_not_running_alarm(synth):
    alarm = _alarm(synth, "CollectorNotRunningAlarm")
    assert alarm["Namespace"] == "ECS/ContainerInsights" and alarm["MetricName"] == "RunningTaskCount"
    assert {d["Name"] for d in alarm["Dimensions"]} == {"ClusterName", "ServiceName"}
    assert "RdcCollector" in json.dumps(alarm["Dimensions"])
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"


def test_api_5xx_rate_alarm(synth):
    alarm = _alarm(synth, "Api5xxRateAlarm")
    assert alarm["Namespace"] == "AWS/ApiGateway" and alarm["MetricName"] == "5XXError"
    assert alarm["Statistic"] == "Average" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"ApiName": "RdcApi-api", "Stage": "api"}


def test_database_cpu_and_free_storage_alarms(synth):
    cpu = _alarm(synth, "DatabaseCpuAlarm")
    storage = _alarm(synth, "DatabaseFreeStorageAlarm")
    assert (cpu["Namespace"], cpu["MetricName"]) == ("AWS/RDS", "CPUUtilization")
    assert (storage["Namespace"], storage["MetricName"]) == ("AWS/RDS", "FreeStorageSpace")
    assert storage["ComparisonOperator"] == "LessThanThreshold" and storage["Threshold"] == 5 * 1024**3
    for alarm in (cpu, storage):
        assert "RdcDatabase" in json.dumps(alarm["Dimensions"])


def test_dashboard_shows_the_collector_metrics(synth):
    (dashboard,) = synth.resources("RdcMonitoring", "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("RowsWritten", "MessagesReceived", "QueueDepth", "Reconnects", "SpoolBytes", "RunningTaskCount"):
        assert metric in body, metric
    for table in ("tick_data", "quote_data", "level2_data"):
        assert table in body


def test_alarm_email_subscribes_when_configured(synth_variant):
    (subscription,) = synth_variant.resources("RdcMonitoring", "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


def test_archive_alarm_pages_on_a_failed_run_or_a_day_retention_could_not_drop(synth):
    alarm = _alarm(synth, "ArchiveAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics[next(i for i, m in metrics.items() if "Expression" in m)]["Expression"] == (
        "FILL(failures, 0) + FILL(blocked, 0)")
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m} == {
        "ArchiveFailures", "RetentionBlockedDays"}
    assert all(m["MetricStat"]["Metric"]["Namespace"] == "RithmicDataCollector" for m in metrics.values()
               if "MetricStat" in m)
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
