"""The archive benchmark: a day of simulator-shaped rows (bench/market_rows.py: the simulator's tapes,
the collector's decoders and writer) for the four default front months, archived by the real
archiver (`collector_ecs.archive.Archiver`: binary COPY into Arrow, zstd Parquet, read back and
checked) into a local directory; rows archived per second, and Parquet bytes per trade, quote and
book update (file bytes over rows, per table)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from pathlib import Path

import asyncpg

from collector_ecs.archive.archiver import Archiver
from collector_ecs.archive.config import ArchiveSettings
from collector_ecs.config import Secret
from rdc_common.clock import ManualClock

from .ingest import contracts
from .market_rows import DEFAULT_RATE, market_rows, write_rows

DAY = dt.date(2026, 11, 23)  # a Monday: every product trades all day
START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
KINDS = {"tick_data": "trade", "quote_data": "quote", "level2_data": "book_update"}


async def _load(url: str, symbols: list[str], seconds: int) -> int:
    rows = await asyncio.to_thread(market_rows, symbols, START, seconds, rate=DEFAULT_RATE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT rdc_ensure_partitions($1, 1)", DAY)
        n = await write_rows(conn, rows)
        await conn.execute("VACUUM ANALYZE")  # as a day long closed is, before its archive runs
        return n
    finally:
        await conn.close()


async def _sizes(url: str) -> dict:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT table_name, sum(rows)::bigint AS rows, sum(bytes)::bigint AS bytes, "
                                "count(*) AS files FROM archived_days GROUP BY 1")
    finally:
        await conn.close()
    return {r["table_name"]: (r["rows"], r["bytes"], r["files"]) for r in rows}


def run(stack, sizes, products, workdir: Path, log) -> dict:
    url = stack.database("rdc_bench_archive")
    root = workdir / "archive"
    shutil.rmtree(root, ignore_errors=True)
    try:
        symbols = [s for s, _ in contracts(products, DAY)]
        log(f"archive: {sizes.archive_seconds:,} s of {', '.join(symbols)} at {DEFAULT_RATE} msgs/s each")
        loaded = asyncio.run(_load(url, symbols, sizes.archive_seconds))
        settings = ArchiveSettings(database_url=Secret(url), archive_url=str(root),
                                   retention_days=dict.fromkeys(KINDS, 0), clock=ManualClock(NOW))
        t0 = time.perf_counter()
        result = asyncio.run(Archiver(settings, tty=False).run(retention=False))
        seconds = time.perf_counter() - t0
        by_table = asyncio.run(_sizes(url))
    finally:
        stack.drop(url)
    if result.rows != loaded:
        raise RuntimeError(f"archived {result.rows} rows of the {loaded} written")
    out = {"rows": result.rows, "files": result.files, "bytes": result.bytes, "seconds": round(seconds, 2),
           "rows_per_s": round(result.rows / seconds), "symbols": symbols, "rate_per_symbol": DEFAULT_RATE,
           # The same rows over the archiving alone, without connecting and planning (under a second).
           "streaming_rows_per_s": round(result.rows / max(result.archive_seconds, 1e-9)),
           "bytes_per_row": {}, "rows_by_kind": {}}
    for table, kind in KINDS.items():
        rows, size, _ = by_table.get(table, (0, 0, 0))
        out["bytes_per_row"][kind] = round(size / rows, 2) if rows else 0.0
        out["rows_by_kind"][kind] = rows
    return out
