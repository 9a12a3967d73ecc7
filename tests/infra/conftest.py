"""Synthesise the CDK app once per session, exactly as `make synth` does, and hand out the templates.

The synth runs in a subprocess: chalice imports the API's `app` module while packaging, which must
not leak into this test process, and the subprocess proves the offline entry point itself works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
STACKS = ("RdcNetwork", "RdcData", "RdcCollector", "RdcApi", "RdcMonitoring")

# `infra.cdk` is imported by a few tests; the repository root is its parent package's home.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Tests that build constructs in-process start jsii too; its Node-version banner is only noise.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "infra: CDK synth and architecture checks (offline, no Docker)")


@dataclass
class Synth:
    outdir: Path
    templates: dict[str, dict]
    manifest: dict
    validation_report: dict | None
    output: str
    used_fixtures: list[str]

    def resources(self, stack: str, type_name: str) -> dict[str, dict]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == type_name}

    def assets(self, stack: str) -> dict:
        return json.loads((self.outdir / f"{stack}.assets.json").read_text())


def _source_context() -> tuple[list[str], list[str]]:
    """Use the real Chalice app and Dockerfile when they exist, the stand-ins under fixtures/ if not."""
    args: list[str] = []
    used: list[str] = []
    if not (REPO_ROOT / "api_chalice" / "app.py").exists():
        args += ["-c", f"rdc:chalice_dir={(FIXTURES / 'chalice_app').relative_to(REPO_ROOT)}"]
        used.append("chalice_app")
    if not (REPO_ROOT / "collector_ecs" / "Dockerfile").exists():
        args += ["-c", f"rdc:collector_image_dir={(FIXTURES / 'collector_image').relative_to(REPO_ROOT)}"]
        used.append("collector_image")
    return args, used


def offline_env() -> dict[str, str]:
    """The caller's environment without AWS credentials, profiles or region, and without docker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # Any docker on PATH would be a lie: synth must only hash the image directory.
    env["CDK_DOCKER"] = "/nonexistent/docker"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    return env


def run_synth(outdir: Path, *extra: str) -> Synth:
    source_args, used = _source_context()
    proc = subprocess.run(
        [sys.executable, "-m", "infra.cdk.synth", "--outdir", str(outdir), *source_args, *extra],
        cwd=REPO_ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"python -m infra.cdk.synth exited {proc.returncode}:\n{output[-6000:]}", pytrace=False)
    report_path = outdir / "validation-report.json"
    return Synth(
        outdir=outdir,
        templates={name: json.loads((outdir / f"{name}.template.json").read_text()) for name in STACKS},
        manifest=json.loads((outdir / "manifest.json").read_text()),
        validation_report=json.loads(report_path.read_text()) if report_path.exists() else None,
        output=output,
        used_fixtures=used,
    )


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default configuration from cdk.json, with the cdk-nag AwsSolutions pack."""
    return run_synth(tmp_path_factory.mktemp("synth") / "cdk.out")


@pytest.fixture(scope="session")
def synth_variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The non-default branches: no interface endpoints, an alarm e-mail, Multi-AZ data tier."""
    return run_synth(
        tmp_path_factory.mktemp("synth_variant") / "cdk.out",
        "-c",
        "rdc:interface_endpoints=false",
        "-c",
        "rdc:alarm_email=ops@example.com",
        "-c",
        "rdc:db_multi_az=true",
        "-c",
        "rdc:redis_replicas=1",
    )


@pytest.fixture(scope="session")
def templates(synth: Synth):
    """`aws_cdk.assertions.Template` per stack, built from the synthesised JSON."""
    from aws_cdk.assertions import Template

    return {name: Template.from_json(body) for name, body in synth.templates.items()}
