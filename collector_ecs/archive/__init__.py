"""`python -m collector_ecs archive`: closed UTC days of the market-data tables to Parquet (locally or
in S3), verified against PostgreSQL, then retention. The layout is rdc_common.archive_layout."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys

from rdc_common.archive_layout import TABLES, LayoutError, table_name

log = logging.getLogger("rdc.archive")


def _day(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a day: write it as YYYY-MM-DD") from None


def _table(raw: str) -> str:
    try:
        return table_name(raw)
    except LayoutError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m collector_ecs archive", description=__doc__.splitlines()[0])
    p.add_argument("--day", type=_day, help="archive this UTC day (again, if it was), YYYY-MM-DD; default: every "
                                            "closed day not archived yet")
    p.add_argument("--table", type=_table, action="append",
                   help=f"only this table ({', '.join(TABLES)}, or ticks/quotes/level2); repeatable")
    p.add_argument("--no-retention", action="store_true", help="archive only; drop nothing")
    p.add_argument("--verify", action="store_true",
                   help="also read back every archived file in full; damaged ones are written again")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from ..config import ConfigError
    from ..observability import Metrics, setup_logging
    from .archiver import AlreadyRunning, ArchiveError, Archiver
    from .config import load_archive_settings
    from .store import StoreError

    try:
        settings = load_archive_settings()
    except ConfigError as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    metrics = Metrics()
    archiver = Archiver(settings, metrics=metrics)
    code = 0
    try:
        asyncio.run(archiver.run(day=args.day, tables=tuple(args.table or TABLES), retention=not args.no_retention,
                                 verify=args.verify))
    except AlreadyRunning as exc:
        log.warning(str(exc))
        code = 3
    except (ArchiveError, StoreError) as exc:
        log.error(f"archive run failed: {exc}. Nothing was dropped that was not verified; the next run retries.")
        metrics.count("ArchiveFailures")
        code = 1
    except (OSError, asyncpg_errors()) as exc:
        log.error(f"archive run failed: {type(exc).__name__}: {exc}. Nothing was dropped that was not verified; "
                  f"the next run retries.")
        metrics.count("ArchiveFailures")
        code = 1
    finally:
        metrics.flush(settings.collector_id)
    return code


def asyncpg_errors() -> tuple[type[BaseException], ...]:
    """PostgreSQL's errors as both drivers raise them (asyncpg; ADBC's DB-API errors)."""
    import asyncpg
    from adbc_driver_manager import Error as AdbcError

    return (asyncpg.PostgresError, asyncpg.InterfaceError, AdbcError)
