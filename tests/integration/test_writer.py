"""The write path against a real PostgreSQL: every row once, through outages."""

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from collector_ecs.migrate import apply_migrations
from collector_ecs.parsing import LEVEL2, QUOTE, TICK
from collector_ecs.spool import Spool
from collector_ecs.writer import Batch, BatchWriter, write_batch
from devstack.services import Postgres, free_port
from rdc_common.clock import default_clock

pytestmark = pytest.mark.integration
T0 = default_clock().now_dt().replace(microsecond=0)


EPOCH_NS = int(T0.timestamp()) * 1_000_000_000


def trades(n, symbol="ESZ6", start=0):
    return [(T0 + dt.timedelta(microseconds=start + i), symbol, "CME", 6000.0 + i * 0.25, 1 + i % 5,
             "BUY" if i % 2 else "SELL", 1000 + i, T0, False, EPOCH_NS + (start + i) * 1000 + 999 - i % 1000,
             T0 + dt.timedelta(microseconds=start + i + 300)) for i in range(n)]


async def test_a_batch_committed_twice_is_stored_once(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        rows = trades(500)
        bid = uuid.uuid4()
        assert await write_batch(conn, TICK, rows, bid) is True
        assert await write_batch(conn, TICK, rows, bid) is False
        assert await conn.fetchval("SELECT count(*) FROM tick_data") == 500
        c = await conn.fetchrow("SELECT row_count, first_ts, last_ts FROM ingest_counters "
                                "WHERE table_name='tick_data' AND symbol='ESZ6'")
        assert (c["row_count"], c["first_ts"], c["last_ts"]) == (500, rows[0][0], rows[-1][0])
        assert await conn.fetchval("SELECT sum(row_count) FROM ingest_minute_counters "
                                   "WHERE table_name='tick_data'") == 500
    finally:
        await conn.close()


async def test_trade_nanoseconds_and_gateway_stamp_round_trip_exactly(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        rows = trades(300)
        assert await write_batch(conn, TICK, rows)
        stored = await conn.fetch('SELECT "timestamp", timestamp_ns, gateway_at FROM tick_data ORDER BY id')
        assert [tuple(r) for r in stored] == [(r[0], r[9], r[10]) for r in rows]
    finally:
        await conn.close()


async def test_a_batch_spooled_before_trades_had_nanoseconds_is_still_written(database_url, tmp_path):
    """A spool written by the collector before sql/005 holds nine-field trade rows; after the upgrade they
    replay into the same table, their new columns empty."""
    old_rows = [r[:9] for r in trades(40)]
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    assert spool.put(Batch(TICK, old_rows))
    writer = BatchWriter(database_url, batch_size=100, flush_interval_s=0.05, max_pending_rows=10_000,
                         db_timeout_s=5, spool=spool)
    await writer.start()
    await writer.close()
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch('SELECT "timestamp", price, timestamp_ns, gateway_at FROM tick_data ORDER BY id')
    finally:
        await conn.close()
    assert [tuple(r) for r in stored] == [(r[0], r[3], None, None) for r in old_rows]
    assert not len(spool)


async def test_all_three_tables_round_trip(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        q = [(T0, "CLF7", "NYMEX", 70.0, 3, 1, 70.01, 4, 2, T0)]
        b = [(T0, "CLF7", "NYMEX", "SNAPSHOT_IMAGE", [70.0, 69.99], [3, 5], [1, 2], [70.01], [4], [2], T0)]
        assert await write_batch(conn, QUOTE, q) and await write_batch(conn, LEVEL2, b)
        row = await conn.fetchrow("SELECT * FROM level2_data")
        assert row["bid_price"] == [70.0, 69.99] and row["update_type"] == "SNAPSHOT_IMAGE"
        assert await conn.fetchval("SELECT ask_price FROM quote_data") == 70.01
    finally:
        await conn.close()


async def test_writer_spools_while_database_is_down_then_replays_exactly_once(tmp_path, pg):
    """The database is not there when rows arrive; they wait on disk and land once, in order."""
    port = free_port()
    server = Postgres(datadir=tmp_path / "pgdata", port=port, logfile=tmp_path / "pg.log")
    dsn = f"postgresql://postgres@127.0.0.1:{port}/rdc"
    spool = Spool(tmp_path / "spool", max_bytes=50 << 20)
    writer = BatchWriter(dsn, batch_size=200, flush_interval_s=0.05, max_pending_rows=100_000,
                         db_timeout_s=2, spool=spool)
    await writer.start()
    try:
        rows = trades(1000)
        writer.add_many(TICK, rows[:600])
        for _ in range(100):
            if len(spool) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(spool) == 3  # 600 rows in batches of 200, all on disk
        await asyncio.to_thread(server.start)
        await apply_migrations(dsn)
        writer.add_many(TICK, rows[600:])
        for _ in range(200):
            if writer.rows_written[TICK] == 1000 and not len(spool):
                break
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(dsn)
        stored = await conn.fetch('SELECT "timestamp", price FROM tick_data ORDER BY id')
        await conn.close()
        assert [(r[0], r[1]) for r in stored] == [(r[0], r[3]) for r in rows]
    finally:
        await writer.close()
        await asyncio.to_thread(server.stop)


async def test_replayed_batch_that_already_committed_is_skipped(database_url, tmp_path):
    """An ambiguous failure: the commit went through but the writer spooled the batch anyway."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    rows = trades(50)
    batch = Batch(TICK, rows)
    conn = await asyncpg.connect(database_url)
    await write_batch(conn, TICK, rows, batch.batch_id)
    assert spool.put(batch)
    writer = BatchWriter(database_url, batch_size=100, flush_interval_s=0.05, max_pending_rows=10_000,
                         db_timeout_s=5, spool=spool)
    await writer.start()
    for _ in range(100):
        if not len(spool):
            break
        await asyncio.sleep(0.05)
    await writer.close()
    assert await conn.fetchval("SELECT count(*) FROM tick_data") == 50
    assert writer.batches_skipped == 1
    await conn.close()


async def test_full_spool_drops_are_counted_and_reported(tmp_path):
    dropped = []

    async def on_dropped(batch, cause):
        dropped.append((batch.table, len(batch.rows), cause))

    spool = Spool(tmp_path / "spool", max_bytes=30_000)
    writer = BatchWriter(f"postgresql://postgres@127.0.0.1:{free_port()}/none", batch_size=100,
                         flush_interval_s=0.05, max_pending_rows=100_000, db_timeout_s=1, spool=spool,
                         on_dropped=on_dropped)
    await writer.start()
    writer.add_many(TICK, trades(1000))
    await writer.close()
    assert len(spool) >= 1
    assert spool.peek()[1].rows == trades(1000)[:100]  # the oldest rows kept, in order
    assert writer.rows_dropped == 1000 - 100 * len(spool)
    assert sum(n for _, n, _ in dropped) == writer.rows_dropped
    assert {c for _, _, c in dropped} == {"spool_full"}
