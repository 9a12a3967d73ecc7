"""Offline synth of every stack into infra/cdk/cdk.out, with the cdk-nag AwsSolutions checks.

    .venv/bin/python -m infra.cdk.synth [--outdir DIR] [-c rdc:key=value ...] [--no-nag]

Needs no AWS credentials, no network and no Docker (image assets are hashed, not built). Exits
non-zero, printing the findings, if cdk-nag reports anything unacknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.cdk.app import CDK_DIR, build_app  # noqa: E402
from infra.cdk.rdc_infra.config import ConfigError  # noqa: E402

REPORT_FILE = "validation-report.json"


def _context_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.cdk.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=CDK_DIR / "cdk.out", help="cloud assembly directory")
    parser.add_argument(
        "-c",
        "--context",
        type=_context_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a context value from cdk.json (repeatable)",
    )
    parser.add_argument("--no-nag", action="store_true", help="skip the cdk-nag AwsSolutions checks")
    args = parser.parse_args(argv)

    context = dict(args.context)
    # Ask CDK for a machine-readable validation report beside the templates, for tests and CI.
    context["@aws-cdk/core:validationReportJson"] = True
    outdir = args.outdir.resolve()
    try:
        app = build_app(outdir, context, nag=not args.no_nag)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    try:
        assembly = app.synth()
    except Exception as exc:  # jsii surfaces CDK's "Validation failed" as a generic error
        print(f"synth failed: {exc}", file=sys.stderr)
        _print_findings(outdir / REPORT_FILE)
        return 1
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {Path(stack.template_full_path).relative_to(outdir.parent)}")
    return 0


def _print_findings(report_path: Path) -> None:
    if not report_path.exists():
        return
    report = json.loads(report_path.read_text())
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                print(f"  {violation['ruleName']}: {construct['constructPath']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
