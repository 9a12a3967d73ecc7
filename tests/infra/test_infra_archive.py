"""The archive in AWS: the scheduled Fargate task (same image, `archive`), its least-privilege access,
the Glue tables over the Hive layout with partition projection, and the Athena workgroup."""

from __future__ import annotations

import json

import pytest

from rdc_common.archive_layout import SCHEMAS, TABLES

pytestmark = pytest.mark.infra


def _container(synth, name):
    for task in synth.resources("RdcCollector", "AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            if container["Name"] == name:
                return task, container
    raise AssertionError(name)


def test_the_archive_task_runs_the_collector_image_daily_in_the_market_break(synth):
    task, archive = _container(synth, "archive")
    _, collector = _container(synth, "collector")
    assert archive["Command"] == ["python", "-m", "collector_ecs", "archive"]
    assert archive["Image"] == collector["Image"]
    env = {e["Name"]: e["Value"] for e in archive["Environment"]}
    assert "RdcArchiveBucket" in json.dumps(env["ARCHIVE_URL"]) and "/archive" in json.dumps(env["ARCHIVE_URL"])
    retention = (env["RETENTION_DAYS_TICKS"], env["RETENTION_DAYS_QUOTES"], env["RETENTION_DAYS_LEVEL2"])
    assert retention == ("90", "30", "14")
    assert {s["Name"] for s in archive["Secrets"]} == {"DB_USER", "DB_PASSWORD"}
    assert not any("PASSWORD" in k for k in env)

    (schedule,) = synth.resources("RdcCollector", "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    # 16:15 in Chicago on trading days: inside CME's daily break, after the session close.
    assert (props["ScheduleExpression"], props["ScheduleExpressionTimezone"]) == (
        "cron(15 16 ? * MON-FRI *)", "America/Chicago")
    target = props["Target"]
    assert "Cluster" in json.dumps(target["Arn"])
    ecs = target["EcsParameters"]
    assert ecs["LaunchType"] == "FARGATE" and "ArchiveTaskDefinition" in json.dumps(ecs["TaskDefinitionArn"])
    network = ecs["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED" and "ComputeSubnet" in json.dumps(network["Subnets"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def _statements(synth, stack, prefix):
    policies = [v for k, v in synth.resources(stack, "AWS::IAM::Policy").items() if k.startswith(prefix)]
    assert len(policies) == 1, prefix
    return policies[0]["Properties"]["PolicyDocument"]["Statement"]


def test_least_privilege(synth):
    # The archive task: the archive's prefix of the bucket (and listing the bucket), nothing else at all.
    (s3,) = _statements(synth, "RdcCollector", "ArchiveTaskDefinitionTaskRole")
    assert all(a.startswith("s3:") for a in s3["Action"]) and "s3:*" not in s3["Action"]
    resources = json.dumps(s3["Resource"])
    assert '"/archive/*"' in resources and "RdcArchiveBucket" in resources and '"*"' not in resources
    # The scheduler may start this task definition and hand it its two roles, and nothing else.
    scheduler = _statements(synth, "RdcCollector", "SchedulerRoleForTarget")
    assert {json.dumps(s["Action"]) for s in scheduler} == {'"iam:PassRole"', '"ecs:RunTask"'}
    run = next(s for s in scheduler if s["Action"] == "ecs:RunTask")
    assert run["Resource"] == {"Ref": next(k for k in synth.resources("RdcCollector", "AWS::ECS::TaskDefinition")
                                          if k.startswith("ArchiveTaskDefinition"))}
    passes = next(s for s in scheduler if s["Action"] == "iam:PassRole")
    assert passes["Condition"] == {"StringLike": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert all("ArchiveTaskDefinition" in json.dumps(r) for r in passes["Resource"])
    # The API may only GET objects of the prefix (to presign download links).
    api = [s for s in _statements(synth, "RdcApi", "ApiFunctionRole") if "s3" in json.dumps(s["Action"])]
    assert [s["Action"] for s in api] == ["s3:GetObject"]
    assert json.dumps(api[0]["Resource"]).endswith('"/archive/*"]]}')
    # The archive task's network: PostgreSQL and HTTPS out, nothing in.
    groups = {k: v for k, v in synth.resources("RdcCollector", "AWS::EC2::SecurityGroup").items()
              if k.startswith("ArchiveSecurityGroup")}
    (group,) = groups.values()
    assert not group["Properties"].get("SecurityGroupIngress")
    assert [e["ToPort"] for e in group["Properties"]["SecurityGroupEgress"]] == [443]


def test_glue_tables_describe_the_hive_layout_with_partition_projection(synth):
    (database,) = synth.resources("RdcData", "AWS::Glue::Database").values()
    name = database["Properties"]["DatabaseInput"]["Name"]
    tables = {t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in
              synth.resources("RdcData", "AWS::Glue::Table").values()}
    assert set(tables) == set(TABLES)
    for table, props in tables.items():
        assert props["DatabaseName"] == name
        inp = props["TableInput"]
        assert [(k["Name"], k["Type"]) for k in inp["PartitionKeys"]] == [("date", "string"), ("symbol", "string")]
        assert [(c["Name"], c["Type"]) for c in inp["StorageDescriptor"]["Columns"]] == [
            (c.name, c.glue_type) for c in SCHEMAS[table]]
        assert inp["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        p = inp["Parameters"]
        assert p["projection.enabled"] == "true"
        assert (p["projection.date.type"], p["projection.date.format"], p["projection.date.interval.unit"]) == (
            "date", "yyyy-MM-dd", "DAYS")
        assert p["projection.date.range"].endswith(",NOW") and p["projection.symbol.type"] == "injected"
        template = json.dumps(p["storage.location.template"])
        assert "RdcArchiveBucket" in template and f"/archive/{table}/date=${{date}}/symbol=${{symbol}}" in template
    assert dict(zip(*zip(*[(c["Name"], c["Type"]) for c in tables["level2_data"]["TableInput"]["StorageDescriptor"]
                          ["Columns"]], strict=True), strict=True))["bid_price"] == "array<double>"


def test_athena_workgroup_writes_encrypted_results_to_their_own_bucket(synth):
    (workgroup,) = synth.resources("RdcData", "AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True and config["BytesScannedCutoffPerQuery"] > 0
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert "RdcAthenaResultsBucket" in json.dumps(result["OutputLocation"])
    bucket = synth.templates["RdcData"]["Resources"]["RdcAthenaResultsBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
