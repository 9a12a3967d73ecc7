"""Command line: `python -m collector_ecs [run|migrate|archive|healthcheck|check-connection|conformance]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from .config import ConfigError, load_settings


def _fail(msg: str, code: int = 2) -> int:
    print(f"collector: {msg}", file=sys.stderr)
    return code


def _environment_with_dotenv() -> dict[str, str]:
    """check-connection and conformance are run by hand beside `make run`, so they read the same
    `.env` (RDC_ENV_FILE, else ./.env), the environment winning. The service never does: in a
    container the environment is its only source."""
    env = dict(os.environ)
    path = Path(env.get("RDC_ENV_FILE") or ".env")
    if not path.is_file():
        return env
    try:
        from devstack.plan import merge_env, parse_dotenv
    except ImportError:  # an image without devstack: no .env support, the environment alone
        return env
    try:
        return merge_env(env, parse_dotenv(path.read_text()))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


COMMANDS = ("run", "migrate", "archive", "healthcheck", "check-connection", "conformance")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["archive"]:  # its own options (python -m collector_ecs archive --help)
        from .archive import main as archive_main
        return archive_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m collector_ecs", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=COMMANDS)
    parser.add_argument("--product", default="ES", help="check-connection: product whose front month to resolve")
    args = parser.parse_args(argv)

    if args.command == "healthcheck":
        from .health import healthcheck
        return healthcheck(os.environ.get("HEALTH_FILE", "/tmp/rdc-collector-health.json"))
    if args.command == "migrate":
        from .config import database_url_from_env
        from .migrate import main as migrate_main
        try:
            return migrate_main(database_url_from_env(os.environ), os.environ.get("RDC_API_DB_PASSWORD"))
        except ConfigError as exc:
            return _fail(str(exc))

    try:
        # The two diagnostic commands list the gateway's systems when no system name is given.
        diagnostic = args.command in ("check-connection", "conformance")
        settings = load_settings(_environment_with_dotenv() if diagnostic else None, require_system_name=not diagnostic)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.command == "check-connection":
        from .check_connection import check
        return asyncio.run(check(settings, args.product))
    if args.command == "conformance":
        from .conformance import conformance
        return asyncio.run(conformance(settings))

    from .observability import setup_logging
    from .service import run
    setup_logging(settings.log_level)
    try:
        return asyncio.run(run(settings))
    except Exception as exc:  # start-up failures: one sentence, no traceback with secrets
        from .check_connection import explain
        return _fail(explain(exc, settings), 1)


if __name__ == "__main__":
    sys.exit(main())
