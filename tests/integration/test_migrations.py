"""The numbered migrations against a real PostgreSQL holding data: sql/005 adds a trade's nanoseconds,
gateway stamp and the heartbeat's latency without rewriting a partition, and old rows read as before."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from collector_ecs.migrate import apply_migrations, migration_files
from collector_ecs.parsing import TICK
from collector_ecs.writer import write_batch

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 24)
IN_PARTITION = dt.datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=dt.UTC)
IN_DEFAULT = dt.datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=dt.UTC)  # outside every daily partition
PARTITIONS = ("SELECT c.relname, c.relfilenode FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
              "WHERE i.inhparent = 'tick_data'::regclass")


def test_trade_clock_columns_are_added_without_rewriting_partitions_and_old_rows_read_as_before(pg, tmp_path):
    before = tmp_path / "sql"
    before.mkdir()
    for version, path in migration_files():
        if version < 5:
            shutil.copy(path, before / path.name)
    url = pg.create_database()
    try:
        asyncio.run(_upgrade_a_database_holding_trades(url, before))
    finally:
        pg.drop_database(url)


async def _upgrade_a_database_holding_trades(url: str, before: Path) -> None:
    await apply_migrations(url, before)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT rdc_ensure_partitions($1, 1)", DAY)
        old_rows = [(ts, "ESZ6", "CME", 6000.25, 2, "BUY", 77, ts, False) for ts in (IN_PARTITION, IN_DEFAULT)]
        assert await write_batch(conn, TICK, old_rows, uuid.uuid4())  # the collector's rows before sql/005
        await conn.execute("INSERT INTO collector_heartbeat (collector_id, connected) VALUES ('old', true)")
        parts = {r["relname"]: r["relfilenode"] for r in await conn.fetch(PARTITIONS)}
        holding = {r["p"] for r in await conn.fetch("SELECT DISTINCT tableoid::regclass::text AS p FROM tick_data")}
        assert holding == {"tick_data_20261124", "tick_data_default"}

        applied = await apply_migrations(url)  # 005 and whatever else is newer, as a deploy applies them
        assert "005_trade_clocks.sql" in applied

        # the same storage files: no partition, those holding rows included, was rewritten
        after = {r["relname"]: r["relfilenode"] for r in await conn.fetch(PARTITIONS)}
        assert {k: after[k] for k in parts} == parts
        stored = await conn.fetch('SELECT "timestamp", symbol, price, size, aggressor, cumulative_volume, received_at, '
                                  "backfilled, timestamp_ns, gateway_at FROM tick_data ORDER BY id")
        assert [tuple(r) for r in stored] == [(ts, "ESZ6", 6000.25, 2, "BUY", 77, ts, False, None, None)
                                              for ts in (IN_PARTITION, IN_DEFAULT)]
        assert await conn.fetchval("SELECT latency FROM collector_heartbeat WHERE collector_id = 'old'") is None
        # the collector's new rows go in beside them, nanoseconds and gateway stamp included
        new = (IN_PARTITION, "ESZ6", "CME", 6000.5, 1, "SELL", 78, IN_PARTITION, False, 1_795_000_000_123_456_789,
               IN_PARTITION + dt.timedelta(microseconds=400))
        assert await write_batch(conn, TICK, [new], uuid.uuid4())
        row = await conn.fetchrow("SELECT timestamp_ns, gateway_at FROM tick_data WHERE timestamp_ns IS NOT NULL")
        assert tuple(row) == new[9:]
    finally:
        await conn.close()
