"""Fault injection with real processes: a simulator, a PostgreSQL of the test's own (so it
can be stopped, hung and locked) and Redis. Each case ends with the count check or the
exact accounting the case allows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
from pathlib import Path

import asyncpg
import pytest
import redis

from collector_ecs.migrate import apply_migrations
from collector_ecs.rithmic_internals import make_client
from collector_ecs.service import Collector
from devstack.services import Postgres, Redis, free_port
from simulator.testing import SimulatorProcess

from .collector_helpers import (
    CollectorProcess,
    collector_env,
    counts,
    live_rows,
    rates_from,
    sent_by_table,
    settings_for,
    stored_trades,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]
SYMBOLS = ("ESZ6", "CLF7")


@pytest.fixture
def sim():
    s = SimulatorProcess(seed=23, rate=250)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def own_pg(tmp_path):
    server = Postgres(datadir=tmp_path / "pgdata", port=free_port(), logfile=tmp_path / "pg.log")
    server.start()
    asyncio.run(apply_migrations(server.url))
    yield server
    server.stop("immediate")


def _new_collector(sim, db_url, redis_url, tmp_path, **extra) -> Collector:
    env = collector_env(sim, db_url, redis_url, tmp_path, DB_TIMEOUT_S="2", **extra)
    return Collector(settings_for(env), metrics_emit=lambda _: None)


async def _assert_stored_equals_sent(sim, db_url):
    sent = sent_by_table(sim.stats())
    stored = await counts(db_url, live_only=True)
    for symbol in SYMBOLS:
        assert stored.get(symbol) == sent[symbol], symbol
    await _assert_no_duplicate_trades(db_url)


async def _assert_no_duplicate_trades(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval('SELECT count(*) - count(DISTINCT (symbol, "timestamp")) FROM tick_data') == 0
    finally:
        await conn.close()


async def _history(sim, symbol, exchange, start, end) -> set[dt.datetime]:
    """The trades the market produced in [start, end], from the simulator's history plant."""
    client = make_client(user="demo", password="demo", system_name="Rithmic Paper Trading", app_name="t",
                         app_version="1", url=sim.url, ca_file=None, max_reconnect_delay=1)
    from async_rithmic.enums import SysInfraType
    await client.connect(plants=[SysInfraType.HISTORY_PLANT])
    try:
        ticks = await client.get_historical_tick_data(symbol, exchange, start, end + dt.timedelta(seconds=1))
    finally:
        await client.disconnect()
    from collector_ecs.parsing import exchange_time
    return {exchange_time(t["data_bar_ssboe"][0], t["data_bar_usecs"][0] if t.get("data_bar_usecs") else 0)
            for t in ticks if start <= exchange_time(t["data_bar_ssboe"][0], t.get("data_bar_usecs", [0])[0]) <= end}


async def _assert_trades_complete(sim, db_url):
    """Every trade between the first and last stored one is stored exactly once (live or backfilled)."""
    await _assert_no_duplicate_trades(db_url)
    conn = await asyncpg.connect(db_url)
    try:
        for symbol, exchange in (("ESZ6", "CME"), ("CLF7", "NYMEX")):
            rows = await conn.fetch('SELECT "timestamp" FROM tick_data WHERE symbol=$1', symbol)
            stored = {r[0] for r in rows}
            truth = await _history(sim, symbol, exchange, min(stored), max(stored))
            assert stored == truth, (symbol, len(stored), len(truth), len(truth - stored), len(stored - truth))
    finally:
        await conn.close()


async def _assert_backfilled_trades_equal_the_live_ones(db_url, seed: int, rate) -> None:
    """Every stored trade against the one the simulator sent (or would have sent) live, decoded by the
    collector: a live row equals it on every field but received_at; a backfilled row equals it on every
    field the history plant's replay carries (the exchange timestamp to the microsecond, symbol,
    exchange, price, size, side) and leaves the ones it does not carry (cumulative volume, nanoseconds,
    gateway stamp) empty rather than invented."""
    backfilled = 0
    for symbol in SYMBOLS:
        stored = await stored_trades(db_url, symbol)
        truth = live_rows(seed, rate, symbol, (int(r[0].timestamp()) for r in stored))
        for row in stored:
            live = truth[row[0]]
            if row[8]:
                backfilled += 1
                assert row[:6] == live[:6], (row, live)
                assert (row[6], row[9], row[10]) == (None, None, None), row
                assert live[9] // 1000 % 1_000_000 == row[0].microsecond  # the live nanoseconds truncate to it
            else:
                assert row[:7] + row[8:] == live[:7] + live[8:], (row, live)
    assert backfilled > 0


async def _gaps(db_url, cause=None):
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT * FROM gaps ORDER BY id")
        return [r for r in rows if cause is None or r["cause"].startswith(cause)]
    finally:
        await conn.close()


# -- PostgreSQL faults ---------------------------------------------------------------------

async def test_postgres_stopped_immediately_for_20s(sim, own_pg, redis_url, tmp_path):
    c = _new_collector(sim, own_pg.url, redis_url, tmp_path)
    await c.start()
    try:
        await asyncio.sleep(2)
        await asyncio.to_thread(own_pg.stop, "immediate")
        await asyncio.sleep(20)
        assert c.writer.spool.bytes > 0  # rows waited on disk meanwhile
        await asyncio.to_thread(own_pg.start)
        await wait_until(lambda: _spool_empty(c), 30)
        await asyncio.sleep(1)
    finally:
        await c.stop()
    await _assert_stored_equals_sent(sim, own_pg.url)


async def _spool_empty(c):
    return len(c.writer.spool) == 0


def _signal_server(server: Postgres, sig) -> None:
    """Signal the postmaster and every backend (backends call setsid, so a process group won't do)."""
    pids = [server.proc.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.proc.pid:  # field 4 of /proc/pid/stat: the parent
            pids.append(int(stat.parent.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def test_postgres_hung_for_30s(sim, own_pg, redis_url, tmp_path):
    c = _new_collector(sim, own_pg.url, redis_url, tmp_path)
    await c.start()
    try:
        await asyncio.sleep(2)
        _signal_server(own_pg, signal.SIGSTOP)  # accepts connections (kernel backlog), answers nothing
        await asyncio.sleep(30)
        assert c.writer.spool.bytes > 0
        _signal_server(own_pg, signal.SIGCONT)
        await wait_until(lambda: _spool_empty(c), 40)
        await asyncio.sleep(1)
    finally:
        _signal_server(own_pg, signal.SIGCONT)
        await c.stop()
    await _assert_stored_equals_sent(sim, own_pg.url)


async def test_data_table_locked_for_10s(sim, own_pg, redis_url, tmp_path):
    c = _new_collector(sim, own_pg.url, redis_url, tmp_path)
    await c.start()
    try:
        await asyncio.sleep(2)
        locker = await asyncpg.connect(own_pg.url)
        async with locker.transaction():
            await locker.execute("LOCK TABLE tick_data IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(10)
        await locker.close()
        await wait_until(lambda: _spool_empty(c), 30)
        await asyncio.sleep(1)
    finally:
        await c.stop()
    await _assert_stored_equals_sent(sim, own_pg.url)


async def test_full_spool_drops_are_recorded_exactly(sim, own_pg, redis_url, tmp_path):
    c = _new_collector(sim, own_pg.url, redis_url, tmp_path, SPOOL_MAX_BYTES="60000", BATCH_SIZE="200")
    await c.start()
    try:
        await asyncio.sleep(2)
        await asyncio.to_thread(own_pg.stop, "immediate")
        await asyncio.sleep(8)
        assert c.writer.rows_dropped > 0
        await asyncio.to_thread(own_pg.start)
        await wait_until(lambda: _spool_empty(c), 30)
    finally:
        await c.stop()  # moves the drops recorded on disk into PostgreSQL
    sent = sent_by_table(sim.stats())
    stored = await counts(own_pg.url, live_only=True)
    dropped = await _gaps(own_pg.url, "spool_full")
    assert sum(g["dropped_rows"] for g in dropped) == c.writer.rows_dropped
    for symbol in SYMBOLS:
        for table in ("tick_data", "quote_data", "level2_data"):
            lost = sum(g["dropped_rows"] for g in dropped if g["symbol"] == symbol and g["cause"].endswith(table))
            assert stored[symbol][table] + lost == sent[symbol][table], (symbol, table)
    await _assert_no_duplicate_trades(own_pg.url)


# -- Process faults ------------------------------------------------------------------------

async def test_sigterm_during_burst_then_restart(sim, database_url, redis_url, tmp_path):
    effective = sim.set_rate(3000)["effective_from"]
    env = collector_env(sim, database_url, redis_url, tmp_path)
    stored_before = 0
    for run in range(2):
        proc = CollectorProcess(env, tmp_path / "collector.log")
        proc.start()
        # Rows of this run, not the last one's (a loaded machine takes seconds to start a process).
        await wait_until(lambda before=stored_before: _more_rows(database_url, before), 30)
        if run == 1:  # the restart gaps are closed by this run's first trades and backfilled in the burst
            await wait_until(lambda: _restart_gaps_recorded(database_url), 30)
        await asyncio.sleep(1.5)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        stored_before = await _any_rows(database_url)
    await _assert_stored_equals_sent(sim, database_url)
    # the downtime between the two runs is a recorded gap, its trades backfilled
    restarts = await _gaps(database_url, "restart")
    assert {g["symbol"] for g in restarts} == set(SYMBOLS) and all(g["backfilled"] for g in restarts)
    await _assert_trades_complete(sim, database_url)
    await _assert_backfilled_trades_equal_the_live_ones(database_url, seed=23, rate=rates_from(250, {effective: 3000}))


async def _any_rows(db_url):
    return sum(sum(t.values()) for t in (await counts(db_url)).values())


async def _more_rows(db_url, before: int) -> bool:
    return await _any_rows(db_url) > before


async def _restart_gaps_recorded(db_url) -> bool:
    return {g["symbol"] for g in await _gaps(db_url, "restart")} == set(SYMBOLS)


async def test_sigkill_ten_times_never_duplicates_and_loses_only_inside_gaps(sim, database_url, redis_url, tmp_path):
    env = collector_env(sim, database_url, redis_url, tmp_path)
    rng = random.Random(5)
    for _ in range(10):
        proc = CollectorProcess(env, tmp_path / "collector.log")
        proc.start()
        await wait_until(lambda: _any_rows(database_url), 20)
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        proc.signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
    # a last clean run closes the final gap
    proc = CollectorProcess(env, tmp_path / "collector.log")
    proc.start()
    await asyncio.sleep(4)
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0
    await _assert_trades_complete(sim, database_url)


# -- Upstream faults -----------------------------------------------------------------------

async def test_five_disconnects_in_a_minute_each_a_backfilled_gap(sim, database_url, redis_url, tmp_path):
    c = _new_collector(sim, database_url, redis_url, tmp_path)
    await c.start()
    try:
        for _ in range(5):
            await asyncio.sleep(4)
            sim.disconnect()
        await asyncio.sleep(6)
        await wait_until(lambda: _closed_gaps(database_url, "disconnect", 5 * len(SYMBOLS)), 30)
    finally:
        await c.stop()
    gaps = await _gaps(database_url, "disconnect")
    assert len(gaps) == 5 * len(SYMBOLS)
    assert all(g["backfilled"] and g["gap_end"] > g["gap_start"] for g in gaps)
    await _assert_trades_complete(sim, database_url)
    await _assert_backfilled_trades_equal_the_live_ones(database_url, seed=23, rate=250)
    assert c.metrics is not None


async def _closed_gaps(db_url, cause, n):
    return len([g for g in await _gaps(db_url, cause) if g["backfilled"]]) >= n


async def test_stall_is_detected_reconnected_and_recorded(sim, database_url, redis_url, tmp_path):
    c = _new_collector(sim, database_url, redis_url, tmp_path, STALL_TIMEOUT_S="2")
    await c.start()
    try:
        await asyncio.sleep(2)
        sim.stall(6)
        assert await wait_until(lambda: _closed_gaps(database_url, "stall", len(SYMBOLS)), 30)
        reconnected_rows = await _any_rows(database_url)
        await asyncio.sleep(2)
        assert await _any_rows(database_url) > reconnected_rows  # data flows again
    finally:
        await c.stop()
    await _assert_trades_complete(sim, database_url)


async def test_forced_logout_reconnects_without_a_storm(database_url, redis_url, tmp_path):
    # A short heartbeat interval, so any session left behind is dropped by the gateway quickly.
    sim = SimulatorProcess(seed=23, rate=250, heartbeat_interval=5)
    sim.start()
    c = _new_collector(sim, database_url, redis_url, tmp_path)
    await c.start()
    try:
        await asyncio.sleep(2)
        sim.forced_logout()
        assert await wait_until(lambda: _closed_gaps(database_url, "forced_logout", len(SYMBOLS)), 30)
        # one ticker and one history session once things settle: no pile of sessions
        assert await wait_until(lambda: _connections_at_most(sim, 2), 15)
        assert len(c.gaps._reconnects) <= 3
        await c.stop()
        await _assert_trades_complete(sim, database_url)
    finally:
        if c.stop_event is not None and not c.stop_event.is_set():
            await c.stop()
        sim.stop()


async def _connections_at_most(sim, n):
    return sim.stats()["connections"] <= n


async def test_redis_stopped_while_subscriptions_are_requested(sim, database_url, tmp_path):
    server = Redis(datadir=tmp_path / "redis", port=free_port(), logfile=tmp_path / "redis.log")
    server.start()
    c = _new_collector(sim, database_url, server.url, tmp_path, SYMBOLS="ES")
    await c.start()
    try:
        server.stop()
        # the API's durable half of the request: the row in PostgreSQL
        conn = await asyncpg.connect(database_url)
        await conn.execute("INSERT INTO subscriptions (symbol, exchange) VALUES ('GCZ6', 'COMEX')")
        row = await wait_until(lambda: _active(conn, "GCZ6"), 20)
        assert row, "reconciled from PostgreSQL while Redis was down"
        server.start()
        await conn.execute("INSERT INTO subscriptions (symbol, exchange) VALUES ('NQZ6', 'CME')")
        r = redis.Redis.from_url(server.url)
        r.xadd("rdc:commands", {"op": "subscribe", "symbol": "NQZ6", "exchange": "CME"})
        r.close()
        assert await wait_until(lambda: _active(conn, "NQZ6"), 20)
        await conn.close()
    finally:
        await c.stop()
        server.stop()


async def _active(conn, symbol):
    return await conn.fetchval("SELECT status = 'active' FROM subscriptions WHERE symbol=$1", symbol)


async def test_malformed_and_unknown_frames_are_skipped(sim, database_url, redis_url, tmp_path):
    c = _new_collector(sim, database_url, redis_url, tmp_path)
    await c.start()
    try:
        await asyncio.sleep(1)
        sim.send_garbage()
        await asyncio.sleep(1.5)
        assert c.ingest.malformed >= 1
        assert c.session.connected
    finally:
        await c.stop()
    await _assert_stored_equals_sent(sim, database_url)
