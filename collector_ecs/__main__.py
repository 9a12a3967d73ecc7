"""Command line: `python -m collector_ecs [run|migrate|healthcheck|check-connection]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .config import ConfigError, load_settings


def _fail(msg: str, code: int = 2) -> int:
    print(f"collector: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector_ecs", description=__doc__)
    parser.add_argument("command", nargs="?", default="run",
                        choices=["run", "migrate", "healthcheck", "check-connection"])
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
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc))
    if args.command == "check-connection":
        from .check_connection import check
        return asyncio.run(check(settings, args.product))

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
