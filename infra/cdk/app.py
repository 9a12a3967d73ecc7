"""The CDK app: reads context once, builds the five stacks and wires them together.

Run by the CDK CLI (`cdk.json`: `python3 app.py`) or by `python -m infra.cdk.synth` for an offline
synth. Stacks are environment-agnostic, so synth needs no AWS credentials and does no lookups.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CDK_DIR = Path(__file__).resolve().parent
REPO_ROOT = CDK_DIR.parent.parent

if __package__ in (None, ""):  # run as a script by the CDK CLI: make `infra.cdk` importable
    sys.path.insert(0, str(REPO_ROOT))

# jsii warns on every start that Node 20 is past its support window; it works, and the noise hides
# real output. Set before aws_cdk (and so jsii) is imported.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Tags, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.cdk.rdc_infra.api_stack import ApiStack  # noqa: E402
from infra.cdk.rdc_infra.collector_stack import CollectorStack  # noqa: E402
from infra.cdk.rdc_infra.config import InfraConfig  # noqa: E402
from infra.cdk.rdc_infra.data_stack import DataStack  # noqa: E402
from infra.cdk.rdc_infra.monitoring_stack import MonitoringStack  # noqa: E402
from infra.cdk.rdc_infra.network_stack import NetworkStack  # noqa: E402

STACK_IDS = ("RdcNetwork", "RdcData", "RdcCollector", "RdcApi", "RdcMonitoring")


def default_context() -> dict[str, Any]:
    """The `context` block of infra/cdk/cdk.json (the CLI reads it itself; a plain python run does not)."""
    return json.loads((CDK_DIR / "cdk.json").read_text())["context"]


def _vendor_shared_code(chalice_dir: Path) -> None:
    """Chalice packages only app.py, chalicelib/, requirements.txt and vendor/: copy the shared
    rdc_common package into vendor/ with its calendar bundle (what api_chalice/package.sh
    --vendor-only does). The Lambda ships without pandas_market_calendars (pandas and numpy alone are
    about 160 MB of the 250 MB a function may unpack); the bundle is that library's schedules written
    down, which is all continuous symbols and scheduled rolls need."""
    target = chalice_dir / "vendor" / "rdc_common"
    source = REPO_ROOT / "rdc_common"
    if not source.is_dir():
        return  # test fixtures synthesise a stand-in app without it
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "calendar_bundle"))
    from rdc_common.calendar import write_bundle

    write_bundle(target / "calendar_bundle")


def build_app(
    outdir: str | os.PathLike[str] | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    nag: bool = True,
) -> App:
    """Construct the app. `context` overrides cdk.json; `nag` registers the cdk-nag AwsSolutions pack."""
    merged = {**default_context(), **(context or {})}
    # The CLI hands its context (cdk.json plus -c flags) over in CDK_CONTEXT_JSON; App() merges it.
    app = App(outdir=str(outdir) if outdir else None, context=merged)
    config = InfraConfig.from_context({key: app.node.try_get_context(key) for key in merged})

    if nag:
        # Copying each acknowledgement (with its reason) into the template's Metadata leaves an
        # audit trail next to the resource and lets tests check that every one has a reason.
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))

    chalice_dir = REPO_ROOT / config.chalice_dir
    image_dir = REPO_ROOT / config.collector_image_dir
    for required, what in (
        (chalice_dir / "app.py", "the Chalice app (rdc:chalice_dir)"),
        (image_dir / config.collector_dockerfile, "the collector's Dockerfile (rdc:collector_image_dir)"),
    ):
        if not required.is_file():
            raise FileNotFoundError(f"{required} not found: it is {what}; fix the path in infra/cdk/cdk.json.")
    _ensure_chalice_config(chalice_dir)
    _vendor_shared_code(chalice_dir)

    network = NetworkStack(app, "RdcNetwork", config=config, description="RithmicDataCollector network")
    data = DataStack(
        app, "RdcData", vpc=network.vpc, config=config, description="RithmicDataCollector stateful resources"
    )
    collector = CollectorStack(
        app,
        "RdcCollector",
        network=network,
        data=data,
        config=config,
        image_directory=str(image_dir),
        description="RithmicDataCollector collector on ECS Fargate",
    )
    # chalice.cdk packages the app into ./chalice.out of the *current* directory, under a fresh
    # UUID each time. Everything it writes is read (template) or copied into cdk.out (code zip)
    # while the construct is built, so a throw-away directory keeps the repo clean.
    with tempfile.TemporaryDirectory(prefix="rdc-chalice-") as scratch, contextlib.chdir(scratch), _chalice_region():
        api = ApiStack(
            app,
            "RdcApi",
            network=network,
            data=data,
            config=config,
            chalice_source_dir=str(chalice_dir),
            description="RithmicDataCollector HTTP API (Chalice)",
        )
    MonitoringStack(
        app,
        "RdcMonitoring",
        config=config,
        cluster_name=collector.cluster.cluster_name,
        service_name=collector.service.service_name,
        database=data.database,
        api_name=api.api_name,
        api_stage=api.stage_name,
        api_function_name=api.function_name,
        description="RithmicDataCollector alarms and dashboard",
    )
    # RDS Proxy target groups take no tags, though CDK's tagging aspect thinks they do.
    Tags.of(app).add("project", "RithmicDataCollector", exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    return app


@contextlib.contextmanager
def _chalice_region() -> Iterator[None]:
    """Chalice builds a boto3 client (no call is made) to learn the API Gateway service principal,
    which fails without a region. Any commercial region gives the same principal, and the stacks
    stay region-agnostic, so lend it one for the duration when the caller has none."""
    if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        yield
        return
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        yield
    finally:
        del os.environ["AWS_DEFAULT_REGION"]


def _ensure_chalice_config(chalice_dir: Path) -> None:
    """Chalice refuses to package without .chalice/config.json; write a minimal one only if absent."""
    config_file = chalice_dir / ".chalice" / "config.json"
    if config_file.exists():
        return
    config_file.parent.mkdir(parents=True, exist_ok=True)
    minimal = {"version": "2.0", "app_name": "rdc-api", "stages": {"dev": {}, "prod": {}}}
    config_file.write_text(json.dumps(minimal, indent=2) + "\n")


if __name__ == "__main__":
    build_app().synth()
