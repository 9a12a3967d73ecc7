"""The archiver against a real PostgreSQL, with days recorded through the collector's writer from the
simulator's market: closed days only, every value and type exactly as stored, idempotent runs,
retention that drops only verified days, the schema guard, and the same query in DuckDB as in
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import logging

import asyncpg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector_ecs.archive.archiver import ArchiveError, Archiver
from rdc_common.archive_layout import TABLES, file_key, load_manifest, manifest_key

from .archive_helpers import (
    DAYS,
    NOW,
    SYMBOLS,
    archived_files,
    assert_one_complete_copy,
    record,
    settings,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def recorded(database_url):
    return await record(database_url)


async def test_closed_days_are_archived_value_for_value(database_url, recorded, tmp_path):
    root = tmp_path / "archive"
    result = await Archiver(settings(database_url, root), tty=False).run()

    # Three closed days x three tables x two symbols; today's row (the day is not closed) stays out.
    assert result.files == len(DAYS) * len(TABLES) * len(SYMBOLS)
    assert result.rows == sum(recorded.values())
    await assert_one_complete_copy(database_url, root, expect=recorded)
    assert not list(root.glob("tick_data/date=2026-11-24"))

    # Exact Arrow/Parquet types: microsecond UTC timestamps, the book's arrays, NOT NULL where the table is.
    tick = pq.read_schema(root / file_key("tick_data", DAYS[0], "ESZ6"))
    assert tick.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert tick.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert (tick.field("size").type, tick.field("cumulative_volume").type) == (pa.int32(), pa.int64())
    assert not tick.field("price").nullable and tick.field("aggressor").nullable
    book = pq.read_schema(root / file_key("level2_data", DAYS[2], "CLF7"))
    assert book.field("bid_price").type == pa.list_(pa.float64())
    assert book.field("ask_size").type == pa.list_(pa.int32())
    meta = pq.ParquetFile(root / file_key("quote_data", DAYS[1], "ESZ6")).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"

    # Each day's manifest lists its files with the counts and checksums archived_days holds.
    files = await archived_files(database_url)
    for table in TABLES:
        for day in DAYS:
            manifest = load_manifest((root / manifest_key(table, day)).read_bytes())
            ours = {f["symbol"]: f for f in files if (f["table_name"], f["day"]) == (table, day)}
            assert {e.symbol for e in manifest.files} == set(SYMBOLS) == set(ours)
            for entry in manifest.files:
                f = ours[entry.symbol]
                assert (entry.rows, entry.bytes, entry.checksum, entry.sha256, entry.path) == (
                    f["rows"], f["bytes"], f["checksum"], f["sha256"], f["path"])
                assert entry.min_timestamp.date() == entry.max_timestamp.date() == day
            assert manifest.rows == recorded[(table, day)]


async def test_a_second_run_changes_nothing(database_url, recorded, tmp_path):
    root = tmp_path / "archive"
    await Archiver(settings(database_url, root), tty=False).run()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    again = await Archiver(settings(database_url, root), tty=False).run()
    assert (again.files, again.rows, again.days) == (0, 0, 0)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()} == before


async def test_a_day_is_archived_only_once_the_clock_has_passed_its_end_and_the_margin(database_url, recorded,
                                                                                         tmp_path):
    root = tmp_path / "archive"
    last = DAYS[-1]
    end = dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    early = await Archiver(settings(database_url, root, now=end + dt.timedelta(minutes=59)), tty=False).run()
    assert {f["day"] for f in await archived_files(database_url)} == set(DAYS[:2])
    assert early.files == 2 * len(TABLES) * len(SYMBOLS)
    with pytest.raises(ArchiveError, match="not closed yet"):
        await Archiver(settings(database_url, root, now=end + dt.timedelta(minutes=59)), tty=False).run(day=last)
    await Archiver(settings(database_url, root, now=end + dt.timedelta(minutes=61)), tty=False).run()
    assert {f["day"] for f in await archived_files(database_url)} == set(DAYS)


async def _partitions(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["relname"] for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE c.relname ~ '_2026111[678]$'")}
    finally:
        await conn.close()


async def _count(url: str, table: str, day: dt.date) -> int:
    conn = await asyncpg.connect(url)
    try:
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return await conn.fetchval(f'SELECT count(*) FROM {table} WHERE "timestamp" >= $1 AND "timestamp" < $2',
                                   start, start + dt.timedelta(days=1))
    finally:
        await conn.close()


async def test_retention_drops_only_days_archived_and_verified(database_url, recorded, tmp_path, caplog):
    root = tmp_path / "archive"
    # On 2026-11-24 a 7-day limit reaches the days before 2026-11-17: only the first recorded day.
    limits = {"tick_data": 7, "quote_data": 7, "level2_data": 0}
    assert await _partitions(database_url) >= {f"{t}_2026111{d}" for t in TABLES for d in (6, 7)}

    # Archive only 2026-11-17, then let retention look at the day before: not archived, so it stays, loudly.
    caplog.set_level(logging.WARNING, "rdc.archive")
    first = await Archiver(settings(database_url, root, retention=limits), tty=False).run(day=DAYS[1])
    assert {(t, d) for t, d, _ in first.blocked} == {("tick_data", DAYS[0]), ("quote_data", DAYS[0])}
    assert not first.dropped
    assert "retention is NOT dropping a day" in caplog.text and "not archived yet" in caplog.text
    assert await _count(database_url, "tick_data", DAYS[0]) == recorded[("tick_data", DAYS[0])]

    # The next run archives it, checks it and only then drops it; level2 (limit 0) is kept forever.
    second = await Archiver(settings(database_url, root, retention=limits), tty=False).run()
    assert set(second.dropped) == {("tick_data", DAYS[0]), ("quote_data", DAYS[0])} and not second.blocked
    parts = await _partitions(database_url)
    assert "tick_data_20261116" not in parts and "quote_data_20261116" not in parts
    assert {"level2_data_20261116", "tick_data_20261117"} <= parts
    assert await _count(database_url, "tick_data", DAYS[0]) == 0
    conn = await asyncpg.connect(database_url)
    try:
        dropped = await conn.fetch("SELECT table_name, day FROM archive_manifests WHERE pg_dropped_at IS NOT NULL")
    finally:
        await conn.close()
    assert {(r["table_name"], r["day"]) for r in dropped} == {("tick_data", DAYS[0]), ("quote_data", DAYS[0])}
    # The archive is now the only copy, and it holds every row.
    files = [f for f in await archived_files(database_url) if (f["table_name"], f["day"]) == ("tick_data", DAYS[0])]
    assert sum(f["rows"] for f in files) == recorded[("tick_data", DAYS[0])]


async def test_retention_removes_a_verified_day_from_the_default_partition(database_url, recorded, tmp_path):
    """The third day has no partition of its own: its rows sit in the default partition, and retention
    deletes exactly them once archived (the partition stays for other days)."""
    root = tmp_path / "archive"
    later = NOW + dt.timedelta(days=3)  # 2026-11-27: a 7-day limit now reaches 2026-11-18
    limits = dict.fromkeys(TABLES, 7)
    result = await Archiver(settings(database_url, root, now=later, retention=limits), tty=False).run()
    assert {(t, d) for t, d in result.dropped} == {(t, d) for t in TABLES for d in DAYS}
    for table in TABLES:
        assert await _count(database_url, table, DAYS[2]) == 0
    conn = await asyncpg.connect(database_url)
    try:
        # Today's row (in the default partition too) is untouched.
        assert await conn.fetchval("SELECT count(*) FROM tick_data_default") == 1
    finally:
        await conn.close()


async def test_rows_arriving_after_archiving_are_archived_before_the_day_is_dropped(database_url, recorded,
                                                                                      tmp_path):
    from bench.market_rows import write_rows

    root = tmp_path / "archive"
    await Archiver(settings(database_url, root), tty=False).run()
    late = dt.datetime(2026, 11, 16, 20, 0, tzinfo=dt.UTC)
    conn = await asyncpg.connect(database_url)
    try:
        await write_rows(conn, {"tick_data": [(late, "GCG7", "COMEX", 2650.5, 2, "BUY", 10, late, True)]})
    finally:
        await conn.close()
    limits = {"tick_data": 7, "quote_data": 0, "level2_data": 0}
    result = await Archiver(settings(database_url, root, retention=limits), tty=False).run()
    assert result.dropped == [("tick_data", DAYS[0])]
    files = {f["symbol"]: f for f in await archived_files(database_url)
             if (f["table_name"], f["day"]) == ("tick_data", DAYS[0])}
    assert files["GCG7"]["rows"] == 1
    assert sum(f["rows"] for f in files.values()) == recorded[("tick_data", DAYS[0])] + 1
    got = pq.read_table(root / file_key("tick_data", DAYS[0], "GCG7")).to_pylist()
    assert got[0]["price"] == 2650.5 and got[0]["backfilled"] is True and got[0]["timestamp"] == late


async def test_a_column_the_archive_does_not_know_stops_the_run(database_url, recorded, tmp_path):
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE tick_data ADD COLUMN venue_ns bigint")
    finally:
        await conn.close()
    root = tmp_path / "archive"
    with pytest.raises(ArchiveError, match=r"tick_data\.venue_ns \(bigint\) is not in the archive schema"):
        await Archiver(settings(database_url, root), tty=False).run()
    assert not root.exists() or not list(root.rglob("*.parquet"))
    assert await archived_files(database_url) == []


async def test_the_same_query_in_duckdb_over_the_archive_as_in_postgresql(database_url, recorded, tmp_path):
    """README's query (hourly bars of one contract over a range of days), on the local archive."""
    root = tmp_path / "archive"
    await Archiver(settings(database_url, root), tty=False).run()
    query = """
        SELECT symbol, date_trunc('hour', "timestamp") AS hour,
               min_by(price, "timestamp") AS open, max(price) AS high, min(price) AS low,
               max_by(price, "timestamp") AS close, sum(size) AS volume, count(*) AS trades
        FROM tick_data
        WHERE symbol = 'ESZ6' AND "date" BETWEEN '2026-11-16' AND '2026-11-18'
        GROUP BY 1, 2 ORDER BY 2
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW tick_data AS SELECT * FROM read_parquet('{root}/tick_data/*/*/*.parquet', "
                f"hive_partitioning = true)")
    archive = con.execute(query).fetchall()
    conn = await asyncpg.connect(database_url)
    try:
        pg = await conn.fetch("""
            SELECT symbol, date_trunc('hour', "timestamp") AS hour,
                   (array_agg(price ORDER BY "timestamp"))[1] AS open, max(price) AS high, min(price) AS low,
                   (array_agg(price ORDER BY "timestamp" DESC))[1] AS close, sum(size) AS volume, count(*) AS trades
            FROM tick_data WHERE symbol = 'ESZ6' AND "timestamp" >= '2026-11-16' AND "timestamp" < '2026-11-19'
            GROUP BY 1, 2 ORDER BY 2""")
    finally:
        await conn.close()
    assert len(archive) == len(pg) >= 4
    for a, p in zip(archive, pg, strict=True):
        assert (a[0], a[1], *a[2:]) == (p[0], p[1], *p[2:])


def test_the_command_line_archives_and_reports_progress_as_json_lines(database_url, recorded, tmp_path):
    import os
    import subprocess
    import sys

    root = tmp_path / "archive"
    env = {**os.environ, "DATABASE_URL": database_url, "ARCHIVE_URL": str(root),
           "RDC_CLOCK_START": NOW.isoformat(), "RDC_CLOCK_SPEED": "1"}
    env.pop("RDC_CLOCK_ANCHOR", None)
    res = subprocess.run([sys.executable, "-m", "collector_ecs", "archive", "--table", "ticks", "--no-retention"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    finished = next(line for line in lines if line.get("msg") == "archive run finished")
    assert finished["files"] == len(DAYS) * len(SYMBOLS) and finished["rows"] > 0
    progress = [line for line in lines if line.get("msg") == "archive progress"]
    assert progress and progress[-1]["done_rows"] == progress[-1]["total_rows"] == finished["rows"]
    assert {"rows_per_s", "eta_s", "elapsed_s"} <= progress[-1].keys()
    emf = next(line for line in lines if "_aws" in line)
    assert emf["ArchiveRows"] == finished["rows"] and emf["RetentionBlockedDays"] == 0
    assert {p.parts[len(root.parts)] for p in root.rglob("*.parquet")} == {"tick_data"}
    bad = subprocess.run([sys.executable, "-m", "collector_ecs", "archive", "--day", "yesterday"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "write it as YYYY-MM-DD" in bad.stderr


async def test_rows_for_a_day_already_moved_to_the_archive_stay_in_postgresql(database_url, recorded, tmp_path):
    from bench.market_rows import write_rows

    root = tmp_path / "archive"
    limits = {"tick_data": 7, "quote_data": 0, "level2_data": 0}
    first = await Archiver(settings(database_url, root, retention=limits), tty=False).run()
    assert ("tick_data", DAYS[0]) in first.dropped
    before = (root / file_key("tick_data", DAYS[0], "ESZ6")).read_bytes()
    late = dt.datetime(2026, 11, 16, 21, 0, tzinfo=dt.UTC)
    conn = await asyncpg.connect(database_url)
    try:
        await write_rows(conn, {"tick_data": [(late, "ESZ6", "CME", 6001.0, 1, "SELL", None, late, True)]})
    finally:
        await conn.close()
    again = await Archiver(settings(database_url, root, retention=limits), tty=False).run()
    assert [(t, d) for t, d, _ in again.blocked] == [("tick_data", DAYS[0])]
    assert "already moved to the archive" in again.blocked[0][2]
    assert await _count(database_url, "tick_data", DAYS[0]) == 1
    assert (root / file_key("tick_data", DAYS[0], "ESZ6")).read_bytes() == before
