"""The offline synth itself: every stack, no Docker or AWS, cdk-nag clean, cfn-lint clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

STACKS = ("RdcNetwork", "RdcData", "RdcCollector", "RdcApi", "RdcMonitoring")

# cfn-lint warnings that come from CDK's own constructs, not from this app. Each is keyed by
# (rule, stack, logical-id prefix) so a new warning anywhere else fails the test.
ALLOWED_CFN_LINT_WARNINGS = {
    # CDK's LogRetention provider adds an explicit DependsOn on its role beside the GetAtt.
    ("W3005", "RdcData", "LogRetention"),
}


def test_every_stack_is_synthesised(synth):
    stacks = {
        name for name, artifact in synth.manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == set(STACKS)
    for name in STACKS:
        assert synth.templates[name]["Resources"], name


def test_stacks_are_environment_agnostic(synth):
    # No account or region baked in means no lookups happened and the assembly deploys anywhere.
    for name in STACKS:
        environment = synth.manifest["artifacts"][name]["environment"]
        assert environment == "aws://unknown-account/unknown-region", (name, environment)
    for body in synth.templates.values():
        text = json.dumps(body)
        assert "us-east-1" not in text and "us-west-2" not in text


def test_collector_image_is_hashed_not_built(synth):
    """Docker is not installed here: the image asset must be a staged directory plus a Dockerfile path."""
    images = synth.assets("RdcCollector")["dockerImages"]
    assert len(images) == 1, "service and migration task share one image"
    (image,) = images.values()
    assert image["source"]["dockerFile"] == "collector_ecs/Dockerfile"
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "collector_ecs" / "Dockerfile").is_file()
    # Large or private directories never enter the build context (or the hash).
    for excluded in (".venv", ".git", ".local", "node_modules", "cdk.out"):
        assert not (staged / excluded).exists(), excluded
    assert not list(staged.glob("infra/cdk/cdk.out"))


def test_cdk_nag_reports_nothing_unacknowledged(synth):
    report = synth.validation_report
    assert report is not None, "synth.py asks CDK for validation-report.json"
    findings = [
        f"{v['ruleName']} at {c['constructPath']}"
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
    assert findings == []
    assert "AwsSolutions-" not in synth.output


def test_every_acknowledgement_has_a_reason(synth):
    acknowledged = 0
    for name, body in synth.templates.items():
        for logical_id, resource in body["Resources"].items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                acknowledged += 1
                assert len(rule.get("reason", "").strip()) >= 20, (name, logical_id, rule)
    # The AwsSolutions pack really ran: our own acknowledgements were copied into the templates.
    own = {
        rule["id"]
        for body in synth.templates.values()
        for resource in body["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert {"AwsSolutions-SMG4", "AwsSolutions-S1", "AwsSolutions-ECS2", "AwsSolutions-RDS6"} <= own
    assert acknowledged > 0


def test_cdk_nag_fails_the_synth_on_a_finding():
    """Guards the wiring: an unacknowledged AwsSolutions finding must stop synthesis."""
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    app = App()
    stack = Stack(app, "NagProbe")
    sqs.Queue(stack, "QueueWithoutDlqOrTls")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-SQS4"):
        app.synth()


@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint_finds_no_errors(synth, stack):
    from cfnlint.api import lint_file

    matches = lint_file(Path(synth.outdir / f"{stack}.template.json"))
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    unexpected = [
        f"{m.rule.id} {m.message}"
        for m in matches
        if not m.rule.id.startswith("E")
        and not any(
            m.rule.id == rule and stack == where and len(m.path) > 1 and str(m.path[1]).startswith(prefix)
            for rule, where, prefix in ALLOWED_CFN_LINT_WARNINGS
        )
    ]
    assert unexpected == []
