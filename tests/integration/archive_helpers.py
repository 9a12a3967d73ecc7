"""Recorded days for the archive tests, and the checks every archive test ends with: each archived file
holds exactly PostgreSQL's rows of its table x day x symbol, value for value and type for type."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import struct
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from bench.market_rows import market_rows, write_rows
from collector_ecs.archive.config import ArchiveSettings
from collector_ecs.config import Secret
from rdc_common.archive_layout import SCHEMAS, TABLES, day_bounds, file_key, reference_checksum
from rdc_common.clock import ManualClock

UTC = dt.UTC
# Monday to Wednesday of the week before the suite's instant (2026-11-24 15:00Z), at 15:00 UTC, when CME
# trades. The first two days get their own partitions; the third's rows land in the default partition.
DAYS = (dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18))
SYMBOLS = ("ESZ6", "CLF7")
NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TODAY_ROW_AT = dt.datetime(2026, 11, 24, 14, 0, tzinfo=UTC)

EXPECTED_TYPES = {
    "id": pa.int64(), "timestamp": pa.timestamp("us", tz="UTC"), "received_at": pa.timestamp("us", tz="UTC"),
    "price": pa.float64(), "size": pa.int32(), "cumulative_volume": pa.int64(), "backfilled": pa.bool_(),
    "bid_price": pa.float64(), "bid_size": pa.int32(),
}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def edge_rows(day: dt.date) -> dict[str, list[tuple]]:
    """Rows a market rarely sends but a recorder must keep exactly: NULLs, NaN, -0.0, empty arrays, a NULL
    array element, the last microsecond of the day, a huge volume."""
    t = dt.datetime(day.year, day.month, day.day, 15, 0, 0, 1, tzinfo=UTC)
    last = day_bounds(day)[1] - dt.timedelta(microseconds=1)
    return {
        "tick_data": [(t, "ESZ6", "CME", 6000.25, 1, None, None, t, True, None, None),
                      (last, "ESZ6", "CME", -0.0, 2147483647, "SELL", 9_007_199_254_740_993, last, False,
                       (last - EPOCH) // dt.timedelta(microseconds=1) * 1000 + 999, last)],
        "quote_data": [(t, "ESZ6", "CME", None, None, None, float("nan"), 7, 0, t)],
        "level2_data": [(t, "ESZ6", "CME", "CLEAR_ORDER_BOOK", (), (), (), (), (), (), t),
                        (t, "ESZ6", "CME", "SOLO", (6000.0, None), (3, 4), (1, None), (), (), (), t)],
    }


async def record(url: str, *, days=DAYS, seconds: int = 12, symbols=SYMBOLS, partitions=2, today_rows=True) -> dict:
    """Simulator-shaped days written through the collector's writer; returns rows per (table, day)."""
    conn = await asyncpg.connect(url)
    written = {}
    try:
        if partitions:
            await conn.execute("SELECT rdc_ensure_partitions($1, $2)", days[0], partitions)
        for i, day in enumerate(days):
            start = dt.datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
            rows = market_rows(symbols, start, seconds, seed=1 + i)
            if i == 0:
                for table, extra in edge_rows(day).items():
                    rows[table] = rows[table] + extra
            await write_rows(conn, rows)
            for table in TABLES:
                written[(table, day)] = len(rows[table])
        if today_rows:
            await write_rows(conn, {"tick_data": [(TODAY_ROW_AT, "ESZ6", "CME", 6100.0, 1, "BUY", 1, TODAY_ROW_AT,
                                                   False, None, None)]})
    finally:
        await conn.close()
    return written


def settings(url: str, archive: str | Path, *, now: dt.datetime = NOW, retention: dict | None = None,
             **kw) -> ArchiveSettings:
    return ArchiveSettings(database_url=Secret(url), archive_url=str(archive),
                           retention_days=retention or dict.fromkeys(TABLES, 0), clock=ManualClock(now), **kw)


def same(a, b) -> bool:
    """Equal as stored: floats by their bits (NaN, -0.0), sequences element by element."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and (
            struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b) and all(
            same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        return isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and a == b and \
            a.utcoffset() == b.utcoffset() == dt.timedelta(0)
    return type(a) is type(b) and a == b


async def pg_rows(url: str, table: str, day: dt.date, symbol: str) -> list[tuple]:
    start, end = day_bounds(day)
    names = ", ".join(f'"{c.name}"' for c in SCHEMAS[table])
    conn = await asyncpg.connect(url)
    try:
        # Table and column names are the test's own constants.
        rows = await conn.fetch(f'SELECT {names} FROM {table} WHERE symbol = $1 AND "timestamp" >= $2 '
                                f'AND "timestamp" < $3 ORDER BY "timestamp", id', symbol, start, end)
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def parquet_rows(path: Path, table: str) -> list[tuple]:
    tbl = pq.read_table(path)
    assert tbl.column_names == [c.name for c in SCHEMAS[table]]
    cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
    return list(zip(*cols, strict=True)) if cols else []


def assert_same_rows(pg: list[tuple], archived: list[tuple], where: str) -> None:
    assert len(pg) == len(archived), f"{where}: {len(pg)} rows in PostgreSQL, {len(archived)} archived"
    for i, (a, b) in enumerate(zip(pg, archived, strict=True)):
        if not all(same(x, y) for x, y in zip(a, b, strict=True)):
            raise AssertionError(f"{where} row {i} differs:\n PostgreSQL {a}\n archive    {b}")


async def archived_files(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT * FROM archived_days ORDER BY table_name, day, symbol")
    finally:
        await conn.close()


async def assert_one_complete_copy(url: str, root: Path, expect: dict | None = None) -> None:
    """Every table x day x symbol PostgreSQL holds for the closed days is archived once, verified, and
    exactly its rows; nothing else (no temporary or stray file) is in the archive."""
    files = await archived_files(url)
    conn = await asyncpg.connect(url)
    try:
        manifests = {(r["table_name"], r["day"]): r for r in await conn.fetch("SELECT * FROM archive_manifests")}
    finally:
        await conn.close()
    expected_paths = set()
    for f in files:
        path = root / f["path"]
        assert f["path"] == file_key(f["table_name"], f["day"], f["symbol"])
        assert (f["table_name"], f["day"]) in manifests, f"{f['path']} recorded without its day's manifest"
        expected_paths.add(f["path"])
        if manifests[(f["table_name"], f["day"])]["pg_dropped_at"] is not None:
            # PostgreSQL no longer has the day: the file must still be the rows that were verified.
            from collector_ecs.archive.parquet import read_back

            assert read_back(path, f["table_name"])[:2] == (f["rows"], f["checksum"]), f["path"]
            continue
        rows = await pg_rows(url, f["table_name"], f["day"], f["symbol"])
        assert_same_rows(rows, parquet_rows(path, f["table_name"]), f["path"])
        assert f["rows"] == len(rows) and f["bytes"] == path.stat().st_size
        assert f["checksum"] == reference_checksum(SCHEMAS[f["table_name"]], rows)
    for (table, day) in manifests:
        expected_paths.add(f"{table}/date={day.isoformat()}/_manifest.json")
    on_disk = files_under(root)
    assert on_disk == expected_paths, f"unexpected: {on_disk - expected_paths}, missing: {expected_paths - on_disk}"
    if expect is not None:
        for (table, day), n in expect.items():
            assert sum(f["rows"] for f in files if (f["table_name"], f["day"]) == (table, day)) == n, (table, day)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def run(coro):
    return asyncio.run(coro)
