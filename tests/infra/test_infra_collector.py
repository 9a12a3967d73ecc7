"""The collector service on Fargate and the one-off migration task."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.infra

SECRET_NAMES = {"DB_USER", "DB_PASSWORD", "RITHMIC_USER", "RITHMIC_PASSWORD", "REDIS_PASSWORD"}


def _task_definitions(synth):
    return synth.resources("RdcCollector", "AWS::ECS::TaskDefinition")


def _container(synth, name):
    for task in _task_definitions(synth).values():
        for container in task["Properties"]["ContainerDefinitions"]:
            if container["Name"] == name:
                return task, container
    raise AssertionError(f"no container {name!r}")


def test_one_cluster_with_container_insights_and_one_service(templates):
    collector = templates["RdcCollector"]
    collector.resource_count_is("AWS::ECS::Cluster", 1)
    collector.resource_count_is("AWS::ECS::Service", 1)
    collector.resource_count_is("AWS::ECS::TaskDefinition", 3)  # the service, migrate, archive
    collector.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_never_two_tasks_on_one_rithmic_login(synth, templates):
    templates["RdcCollector"].has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "DesiredCount": 1,
            "DeploymentConfiguration": {
                "MinimumHealthyPercent": 0,
                "MaximumPercent": 100,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
            },
            "NetworkConfiguration": {"AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})},
        },
    )
    (service,) = synth.resources("RdcCollector", "AWS::ECS::Service").values()
    subnets = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    assert len(subnets) == 2 and all("VpcComputeSubnet" in json.dumps(s) for s in subnets)


def test_collector_container_drains_and_reports_health(synth):
    task, container = _container(synth, "collector")
    assert container["StopTimeout"] >= 60
    assert container["HealthCheck"]["Command"] == ["CMD", "python", "-m", "collector_ecs", "healthcheck"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"]


def test_secrets_are_injected_never_plain_environment(synth):
    for name in ("collector", "migrate"):
        _, container = _container(synth, name)
        environment = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
        secrets = {s["Name"] for s in container["Secrets"]}
        assert not secrets & environment.keys()
        assert not any("PASSWORD" in key or key.endswith("_USER") for key in environment), environment
        assert {"DB_USER", "DB_PASSWORD"} <= secrets
    _, collector = _container(synth, "collector")
    assert {s["Name"] for s in collector["Secrets"]} == SECRET_NAMES
    values = {s["Name"]: json.dumps(s["ValueFrom"]) for s in collector["Secrets"]}
    assert "RdcRithmicSecret" in values["RITHMIC_PASSWORD"] and ":password::" in values["RITHMIC_PASSWORD"]
    assert "DatabaseSecretAttachment" in values["DB_PASSWORD"]


def test_log_group_has_retention(templates):
    templates["RdcCollector"].has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_migration_task_runs_the_same_image_with_migrate(synth):
    _, migrate = _container(synth, "migrate")
    _, collector = _container(synth, "collector")
    assert migrate["Command"] == ["python", "-m", "collector_ecs", "migrate"]
    assert migrate["Image"] == collector["Image"]
    assert "RDC_API_DB_PASSWORD" in {s["Name"] for s in migrate["Secrets"]}
    outputs = synth.templates["RdcCollector"]["Outputs"]
    assert {"ClusterName", "MigrationTaskDefinitionArn", "TaskSecurityGroup"} <= outputs.keys()
    assert "ComputeSubnets" in synth.templates["RdcNetwork"]["Outputs"]


def test_task_role_reaches_only_the_rithmic_secret(synth):
    """The service only records: the archive bucket is the archive task's (tests/infra/test_infra_archive.py)."""
    task_roles = {
        k: v
        for k, v in synth.resources("RdcCollector", "AWS::IAM::Policy").items()
        if k.startswith("TaskDefinitionTaskRole")
    }
    (policy,) = task_roles.values()
    resources = json.dumps([s["Resource"] for s in policy["Properties"]["PolicyDocument"]["Statement"]])
    assert "RdcRithmicSecret" in resources
    assert "RdcArchiveBucket" not in resources and "RdcDatabaseSecret" not in resources and '"*"' not in resources


def test_collector_environment_matches_collector_ecs_config(synth):
    """Names collector_ecs.config reads: the secret's ARN for re-reads, TLS Redis without a password."""
    _, collector = _container(synth, "collector")
    environment = {e["Name"]: e["Value"] for e in collector["Environment"]}
    assert "RdcRithmicSecret" in json.dumps(environment["RITHMIC_SECRET_ID"])
    assert "rediss://" in json.dumps(environment["REDIS_URL"]) and ":6380/0" in json.dumps(environment["REDIS_URL"])
    assert {"DB_HOST", "DB_PORT", "DB_NAME", "SYMBOLS", "RITHMIC_URL", "RITHMIC_SYSTEM_NAME", "RITHMIC_APP_NAME",
            "RITHMIC_APP_VERSION"} <= environment.keys()
    assert "RdcDatabase" in json.dumps(environment["DB_HOST"]), "the collector writes directly, not via the proxy"


def test_rithmic_settings_outside_the_secret_are_a_pair_the_collector_accepts(synth):
    """Gateway, system and application name are stack context, only the login is in the secret; the
    defaults are the test gateway with the system it offers, which collector_ecs.config accepts."""
    from collector_ecs.config import load_settings

    _, collector = _container(synth, "collector")
    environment = {e["Name"]: e["Value"] for e in collector["Environment"]}
    assert (environment["RITHMIC_URL"], environment["RITHMIC_SYSTEM_NAME"]) == (
        "wss://rituz00100.rithmic.com:443", "Rithmic Test")
    assert environment["RITHMIC_APP_NAME"] and environment["RITHMIC_APP_VERSION"]
    secrets = {s["Name"] for s in collector["Secrets"]}
    assert {"RITHMIC_USER", "RITHMIC_PASSWORD"} <= secrets
    assert not {"RITHMIC_URL", "RITHMIC_SYSTEM_NAME", "RITHMIC_APP_NAME"} & secrets
    secret = synth.templates["RdcData"]["Resources"]["RdcRithmicSecret"]
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]).keys() == {"user"}
    assert generated["GenerateStringKey"] == "password"
    settings = load_settings({"RITHMIC_USER": "u", "RITHMIC_PASSWORD": "p", "CONFIG_FILE": "/nonexistent.json",
                              "RITHMIC_URL": environment["RITHMIC_URL"]})
    assert settings.rithmic_system_name == environment["RITHMIC_SYSTEM_NAME"]
