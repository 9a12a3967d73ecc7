"""The collector against the simulator (real async_rithmic over a real WebSocket), real
PostgreSQL and real Redis: what the market sent is what is stored."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import signal

import asyncpg
import boto3
import pytest
import redis
from moto import mock_aws

from collector_ecs.service import Collector
from simulator.testing import SimulatorProcess

from .collector_helpers import (
    CollectorProcess,
    collector_env,
    counts,
    live_rows,
    sent_by_table,
    settings_for,
    stored_trades,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(request):
    s = SimulatorProcess(seed=11, rate=300, tls=getattr(request, "param", "ws") == "wss")
    s.start()
    yield s
    s.stop()


async def _status(database_url, symbol):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow("SELECT status, reason FROM subscriptions WHERE symbol=$1", symbol)
    finally:
        await conn.close()


def _queue_command(redis_url, op, symbol, exchange):
    r = redis.Redis.from_url(redis_url)
    r.xadd("rdc:commands", {"op": op, "symbol": symbol, "exchange": exchange})
    r.close()


@pytest.mark.parametrize("sim", ["ws", "wss"], indirect=True)  # the frame reader under plain TCP and TLS
async def test_every_message_sent_is_stored_once_with_exchange_time(sim, database_url, redis_url, tmp_path):
    env = collector_env(sim, database_url, redis_url, tmp_path)
    emf: list[str] = []
    # EMF lines at every heartbeat, so the run's latency figures are flushed within it
    collector = Collector(dataclasses.replace(settings_for(env), metrics_interval_s=1.0), metrics_emit=emf.append)
    await collector.start()
    try:
        assert set(collector.subs.active) == {"ESZ6", "CLF7"}  # products resolved to front months
        await asyncio.sleep(4)
    finally:
        await collector.stop()
    sent = sent_by_table(sim.stats())
    stored = await counts(database_url)
    for symbol in ("ESZ6", "CLF7"):
        assert sent[symbol]["tick_data"] > 50
        assert stored[symbol] == sent[symbol], symbol
    conn = await asyncpg.connect(database_url)
    try:
        dupes = await conn.fetchval('SELECT count(*) - count(DISTINCT (symbol, "timestamp")) FROM tick_data')
        assert dupes == 0
        lag = await conn.fetchrow('SELECT min(received_at - "timestamp") AS lo, max(received_at - "timestamp") AS hi '
                                  "FROM tick_data")
        # exchange time precedes our receive time, and is not our clock
        assert dt.timedelta(0) < lag["lo"] and lag["hi"] < dt.timedelta(seconds=5)
        prices = await conn.fetch("SELECT price FROM tick_data WHERE symbol='ESZ6'")
        assert all((p["price"] * 4) == int(p["price"] * 4) for p in prices)  # on ES's 0.25 grid
        latency = json.loads(await conn.fetchval("SELECT latency FROM collector_heartbeat"))
    finally:
        await conn.close()
    # Each stored trade is the market's, field for field: timestamp and timestamp_ns the exchange's time
    # (source_*, to the nanosecond), gateway_at the gateway's stamp beside it (the simulator's frames,
    # recomputed from its seed, through the collector's decoder).
    for symbol in ("ESZ6", "CLF7"):
        stored = await stored_trades(database_url, symbol)
        truth = live_rows(11, 300, symbol, (int(r[0].timestamp()) for r in stored))
        for row in stored:
            want = truth[row[0]]
            assert row[:7] + row[8:] == want[:7] + want[8:], (row, want)
            assert row[9] // 1000 % 1_000_000 == row[0].microsecond and 150 <= (row[10] - row[0]).microseconds <= 601
        assert len({r[9] % 1000 for r in stored}) > 1, "sub-microsecond digits are kept"
        # the heartbeat's exchange-to-collector latency (what /health shows), and the EMF metrics'
        assert 0 < latency[symbol]["p50_ms"] <= latency[symbol]["p99_ms"] < 5000 and latency[symbol]["samples"] > 0
        lines = [d for d in map(json.loads, emf) if d.get("Symbol") == symbol]
        assert lines and all(0 < d["ExchangeToCollectorP50"] <= d["ExchangeToCollectorP99"] for d in lines)


async def test_subscription_requested_while_stopped_becomes_active_at_start(sim, database_url, redis_url, tmp_path):
    conn = await asyncpg.connect(database_url)
    await conn.execute("INSERT INTO subscriptions (symbol, exchange) VALUES ('GCZ6', 'COMEX')")
    await conn.close()
    _queue_command(redis_url, "subscribe", "GCZ6", "COMEX")
    collector = Collector(settings_for(collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES")),
                          metrics_emit=lambda _: None)
    await collector.start()
    try:
        row = await wait_until(lambda: _status(database_url, "GCZ6"), 10)
        assert row["status"] == "active"
        got = await wait_until(lambda: _ticks(database_url, "GCZ6"), 10)
        assert got > 0
    finally:
        await collector.stop()


async def _ticks(database_url, symbol):
    return (await counts(database_url)).get(symbol, {}).get("tick_data", 0)


async def test_live_subscribe_unknown_symbol_and_unsubscribe(sim, database_url, redis_url, tmp_path):
    collector = Collector(settings_for(collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES")),
                          metrics_emit=lambda _: None)
    await collector.start()
    try:
        conn = await asyncpg.connect(database_url)
        await conn.execute("INSERT INTO subscriptions (symbol, exchange) VALUES ('NQZ6','CME'), ('ESZ9','CME')")
        _queue_command(redis_url, "subscribe", "NQZ6", "CME")
        _queue_command(redis_url, "subscribe", "ESZ9", "CME")  # not listed: the gateway refuses it

        async def settled():
            a, b = await _status(database_url, "NQZ6"), await _status(database_url, "ESZ9")
            return a["status"] != "pending" and b["status"] != "pending" and (a, b)

        nq, bad = await wait_until(settled, 10)
        assert nq["status"] == "active"
        assert bad["status"] == "failed" and bad["reason"]
        assert await wait_until(lambda: _ticks(database_url, "NQZ6"), 10) > 0

        await conn.execute("UPDATE subscriptions SET desired=false WHERE symbol='NQZ6'")
        _queue_command(redis_url, "unsubscribe", "NQZ6", "CME")
        row = await wait_until(lambda: _unsubscribed(database_url), 10)
        assert row
        await asyncio.sleep(0.5)  # rows read before the gateway's answer are still being committed
        before = await _ticks(database_url, "NQZ6")
        await asyncio.sleep(1.0)
        assert await _ticks(database_url, "NQZ6") == before
        # Redis delivered each command to our consumer group and we acknowledged it.
        r = redis.Redis.from_url(redis_url)
        assert r.xpending("rdc:commands", "collector")["pending"] == 0
        r.close()
        await conn.close()
    finally:
        await collector.stop()


async def _unsubscribed(database_url):
    row = await _status(database_url, "NQZ6")
    return row["status"] == "unsubscribed"


async def test_sigterm_drains_and_loses_nothing(sim, database_url, redis_url, tmp_path):
    proc = CollectorProcess(collector_env(sim, database_url, redis_url, tmp_path), tmp_path / "collector.log")
    proc.start()
    try:
        assert await wait_until(lambda: _ticks(database_url, "ESZ6"), 20) > 0
        await asyncio.sleep(1.0)
        proc.signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
    finally:
        proc.kill()
    assert code == 0, (tmp_path / "collector.log").read_text()[-2000:]
    sent = sent_by_table(sim.stats())
    stored = await counts(database_url)
    assert {s: stored[s] for s in sent} == sent
    log = (tmp_path / "collector.log").read_text()
    assert "demo" not in log.replace('"user": "demo"', "")  # the password (also "demo") is never printed


async def test_rotated_password_is_reread_from_secrets_manager(database_url, redis_url, tmp_path):
    """The secret was rotated after start-up: the refused login re-reads it and succeeds."""
    sim = SimulatorProcess(seed=3, rate=100, users="demo:rotated-Pw-2")
    sim.start()
    try:
        with mock_aws():
            sm = boto3.client("secretsmanager", region_name="us-east-1")
            old = {"user": "demo", "password": "old-Pw-1", "system_name": "Rithmic Paper Trading"}
            sm.create_secret(Name="rithmic", SecretString=json.dumps(old))
            env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES", RITHMIC_SECRET_ID="rithmic")
            del env["RITHMIC_USER"], env["RITHMIC_PASSWORD"]
            settings = settings_for_secret(env, sm)
            assert settings.rithmic_password.value == "old-Pw-1"
            sm.put_secret_value(SecretId="rithmic", SecretString=json.dumps({**old, "password": "rotated-Pw-2"}))
            collector = Collector(settings, metrics_emit=lambda _: None, secrets_client=sm)
            await collector.start()
            try:
                assert collector.session.credential_rereads == 1
                assert await wait_until(lambda: _ticks(database_url, "ESZ6"), 10) > 0
                # the refused login's socket is closed, not left open beside the new session
                assert sim.stats()["connections"] == 2  # ticker and history
            finally:
                await collector.stop()
    finally:
        sim.stop()


def settings_for_secret(env, client):
    from collector_ecs.config import load_settings
    return load_settings(env, secrets_client=client)


async def test_a_product_from_the_stream_is_followed_and_an_expired_contract_is_never_sent(
        sim, database_url, redis_url, tmp_path):
    """What POST /api/subscribe/NQ and /ESU6 leave behind: a kind='product' row, a contract row, commands."""
    collector = Collector(settings_for(collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES")),
                          metrics_emit=lambda _: None)
    await collector.start()
    try:
        conn = await asyncpg.connect(database_url)
        await conn.execute("INSERT INTO subscriptions (symbol, exchange, kind) VALUES ('NQ', 'CME', 'product'), "
                           "('ESU6', 'CME', 'contract')")
        _queue_command(redis_url, "subscribe", "NQ", "CME")
        _queue_command(redis_url, "subscribe", "ESU6", "CME")  # September 2026: over by 2026-11-24

        async def followed():
            rows = {r["symbol"]: r for r in await conn.fetch("SELECT * FROM subscriptions")}
            return "NQZ6" in rows and rows["NQZ6"]["status"] == "active" and rows["ESU6"]["status"] != "pending" \
                and rows
        rows = await wait_until(followed, 10)
        assert (rows["NQ"]["kind"], rows["NQ"]["status"]) == ("product", "active")
        assert (rows["NQZ6"]["kind"], rows["NQZ6"]["product"]) == ("contract", "NQ")
        assert (rows["ESU6"]["status"], rows["ESU6"]["reason"]) == \
            ("expired", "ESU6 stopped trading at 2026-09-18T21:00:00+00:00")
        assert "ESU6" not in collector.subs.active
        assert await wait_until(lambda: _ticks(database_url, "NQZ6"), 10) > 0
        rolls = [tuple(r) for r in await conn.fetch("SELECT product, from_symbol, to_symbol FROM rolls ORDER BY id")]
        assert rolls == [("ES", None, "ESZ6"), ("NQ", None, "NQZ6")]

        # DELETE /api/subscribe/NQ: the product and the contract it brought in go.
        await conn.execute("UPDATE subscriptions SET desired = false, status = 'pending' WHERE symbol = 'NQ'")
        _queue_command(redis_url, "unsubscribe", "NQ", "CME")

        async def dropped():
            rows = {r["symbol"]: r["status"] for r in await conn.fetch("SELECT symbol, status FROM subscriptions")}
            return rows["NQ"] == "unsubscribed" and rows["NQZ6"] == "unsubscribed" and rows
        assert await wait_until(dropped, 10)
        assert set(collector.subs.active) == {"ESZ6"}
        await conn.close()
    finally:
        await collector.stop()
