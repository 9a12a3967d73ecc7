"""The collector across closes, opens, rolls and expiries: the simulator and the collector share a fast
simulated clock (RDC_CLOCK_START/SPEED/ANCHOR, the same three for both), the real async_rithmic client
talks to the simulator over a real socket, and PostgreSQL and Redis are real.

What is checked is what a user would see in the tables and in /health: no reconnects and no gaps
over a weekend or a daily halt, recording that resumes with the first trade after an open, a real
stall that is still one gap, a dead connection noticed while everything is closed, a product that
rolls to its new front month at the session open and lets the old one expire, and restarts that
change nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from dataclasses import dataclass, field
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import redis

from collector_ecs.service import Collector
from rdc_common.calendar import hours
from simulator.testing import SimulatorProcess

from .collector_helpers import (
    CollectorProcess,
    clock_env,
    collector_env,
    history_trades,
    query,
    settings_for,
    stored_trade_times,
    wait_until,
)
from .test_api_support import api_client, get_json, response_schema, schema_errors

pytestmark = pytest.mark.integration

CT = ZoneInfo("America/Chicago")
UTC = dt.UTC


def ct(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CT)


async def until(clock, instant: dt.datetime) -> None:
    """Sleep until the simulated clock reaches `instant` (looked at again after every wake)."""
    while clock.now() < instant.timestamp():
        await clock.sleep_until(instant.timestamp())


async def _events(database_url: str) -> list:
    return await query(database_url, "SELECT event, detail, at FROM collector_sessions ORDER BY id")


async def _gaps(database_url: str) -> list:
    return await query(database_url, "SELECT * FROM gaps ORDER BY id")


async def _subscriptions(database_url: str) -> list[tuple]:
    rows = await query(database_url, "SELECT symbol, exchange, kind, product, desired, status, reason "
                                     "FROM subscriptions ORDER BY symbol")
    return [tuple(r) for r in rows]


async def _rolls(database_url: str) -> list[tuple]:
    rows = await query(database_url, "SELECT id, product, exchange, from_symbol, to_symbol, at FROM rolls ORDER BY id")
    return [tuple(r) for r in rows]


async def _heartbeat_markets(database_url: str) -> tuple[dt.datetime, dict] | None:
    import json

    rows = await query(database_url, "SELECT updated_at, markets FROM collector_heartbeat "
                                     "WHERE markets IS NOT NULL ORDER BY updated_at DESC LIMIT 1")
    return (rows[0]["updated_at"], json.loads(rows[0]["markets"])) if rows else None


def _health(monkeypatch, database_url: str, redis_url: str) -> dict:
    """GET /health from the API (in-process), checked against its OpenAPI schema."""
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/health")
        assert schema_errors(response_schema("/health", "get", 200), body) == []
        return body


async def _assert_complete(sim, database_url: str, symbol: str, start: dt.datetime | None, end: dt.datetime) -> int:
    """Every trade the market made in [start, end] is stored, nothing else; returns how many.
    `start` None: from the first trade stored (a collector started after the market's own start)."""
    if start is None:
        start = min(await stored_trade_times(database_url, symbol, end - dt.timedelta(days=1), end))
    truth = await history_trades(sim, symbol, "CME", start, end)
    stored = await stored_trade_times(database_url, symbol, start, end)
    assert stored == truth, (symbol, start, end, len(stored), len(truth))
    return len(stored)


# -- a week in minutes ------------------------------------------------------------------------------

WEEK_SPEED = 1800.0  # Friday 15:50 CT to Monday 09:00 CT (65 h) in about 2 min 10 s
STALL_TIMEOUT_S = 5.0
STALL_S = 12.0  # real seconds of injected silence (6 h of market at this speed)


async def _watch_markets(database_url: str, symbol: str, seen: list) -> None:
    """Note every distinct heartbeat: (its clock instant, the market status it reports for symbol)."""
    last = None
    while True:
        hb = await _heartbeat_markets(database_url)
        if hb is not None and hb[0] != last and symbol in hb[1]:
            last = hb[0]
            seen.append((hb[0], hb[1][symbol]["market"]))
        await asyncio.sleep(0.25)


def _overlaps(start: dt.datetime, end: dt.datetime | None, lo: dt.datetime, hi: dt.datetime) -> bool:
    return start < hi and (end is None or end > lo)


async def _traded_after(database_url: str, symbol: str, instant: dt.datetime) -> bool:
    """A trade later than `instant` (market time) is stored. A loaded machine can put the simulator
    behind the clock, so what the market has delivered is waited for, not the clock alone."""
    rows = await query(database_url, 'SELECT 1 FROM tick_data WHERE symbol = $1 AND "timestamp" > $2 LIMIT 1',
                       symbol, instant)
    return bool(rows)


@pytest.mark.filterwarnings("ignore:No application metrics")
async def test_week_in_minutes(database_url, redis_url, tmp_path, monkeypatch):
    """Friday 15:50 CT over the weekend to Monday 09:00 CT at 1800x. (The daily halt is crossed by
    the roll scenario below, Wednesday 16:00-17:00 CT.)"""
    began = time.monotonic()
    friday_close, sunday_open = ct(2026, 12, 4, 16, 0), ct(2026, 12, 6, 17, 0)
    # The clock reaches Friday 15:50 8 s from now: the processes start in the hours before it.
    clock_vars = clock_env(ct(2026, 12, 4, 15, 50).isoformat(), WEEK_SPEED, lead_s=8.0)
    sim = SimulatorProcess(seed=31, rate=1, clock=clock_vars)  # rate 1: the least data the market makes
    sim.start()
    try:
        env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES",
                            STALL_TIMEOUT_S=str(STALL_TIMEOUT_S), **clock_vars)
        c = Collector(settings_for(env), metrics_emit=lambda _: None)
        clock = c.settings.clock
        await c.start()
        assert clock.now() < ct(2026, 12, 4, 15, 50).timestamp(), "the collector started too late to see the close"
        seen: list = []
        watcher = asyncio.create_task(_watch_markets(database_url, "ESZ6", seen))
        try:
            await until(clock, ct(2026, 12, 5, 12, 0))  # Saturday noon
            weekend = await asyncio.to_thread(_health, monkeypatch, database_url, redis_url)
            # /health tells the user it is closed, and when it opens: Sunday 17:00 CT.
            assert weekend["collector"]["markets"]["ESZ6"]["market"] == "closed"
            assert weekend["collector"]["markets"]["ESZ6"]["next_open"] == "2026-12-06T23:00:00+00:00"

            await until(clock, ct(2026, 12, 6, 18, 0))
            assert await wait_until(lambda: _heartbeat_after(database_url, sunday_open), 10)
            sunday = await asyncio.to_thread(_health, monkeypatch, database_url, redis_url)
            assert sunday["collector"]["markets"]["ESZ6"]["market"] == "open"
            assert sunday["collector"]["markets"]["ESZ6"]["next_close"] == "2026-12-07T22:00:00+00:00"

            # A real stall during open hours, once the market's Sunday evening has been delivered.
            await until(clock, ct(2026, 12, 7, 1, 0))
            assert await wait_until(lambda: _traded_after(database_url, "ESZ6", ct(2026, 12, 6, 19, 0)), 60)
            await _control(sim.stall, STALL_S)
            assert await wait_until(lambda: _stall_gaps(database_url), STALL_S + 60)
            await until(clock, ct(2026, 12, 7, 9, 0))
            # Recording resumed with the first trade after the open, and nothing was lost around the
            # close (the history plant replays exactly what the market made).
            assert await _assert_complete(sim, database_url, "ESZ6", ct(2026, 12, 4, 15, 50), friday_close) > 0
            assert await _assert_complete(sim, database_url, "ESZ6", sunday_open, ct(2026, 12, 6, 17, 10)) > 0
            stall_gap = next(g for g in await _gaps(database_url) if g["cause"] == "stall")
            assert await wait_until(lambda: _traded_after(database_url, "ESZ6", stall_gap["gap_end"]), 60)
        finally:
            watcher.cancel()
            await c.stop()
    finally:
        sim.stop()
    elapsed = time.monotonic() - began

    weekend_window = (ct(2026, 12, 4, 15, 50), ct(2026, 12, 6, 17, 10))
    # Zero reconnects and zero gaps over the weekend.
    events = await _events(database_url)
    assert [(e["event"], e["detail"]) for e in events][:1] == [("connected", None)]
    assert not [e for e in events[1:] if weekend_window[0] <= e["at"] <= weekend_window[1]], events
    gaps = await _gaps(database_url)
    assert not [g for g in gaps if _overlaps(g["gap_start"], g["gap_end"], *weekend_window)], gaps
    # Closed means nothing traded: no row was stored between the close and the open.
    assert await stored_trade_times(database_url, "ESZ6", friday_close + dt.timedelta(microseconds=1),
                               sunday_open - dt.timedelta(microseconds=1)) == set()
    # The stall during open hours is still exactly one stall gap, and the stream came back after it.
    stall_gaps = [g for g in gaps if g["cause"] == "stall"]
    assert len(stall_gaps) == 1 and stall_gaps[0]["symbol"] == "ESZ6", gaps
    assert stall_gaps[0]["gap_start"] > sunday_open and stall_gaps[0]["gap_end"] > stall_gaps[0]["gap_start"]
    # The heartbeat said closed, then open, and always what the calendar says.
    statuses = [m for _, m in seen]
    assert "closed" in statuses and "open" in statuses[statuses.index("closed"):], statuses
    es = hours("ES")
    for at, market in seen:
        t = at.timestamp()
        if es.state(t - 900).status == es.state(t + 900).status:  # not within 15 min of a change
            assert market == es.state(t).status, (at, market)
    print(f"week in minutes: Friday 15:50 CT to Monday 09:00 CT in {elapsed:.0f} s of wall time")


async def _control(call, *args, attempts: int = 3):
    """A simulator control request off the event loop (the in-process collector keeps reading), tried
    again when a starved simulator is slow to answer (a repeated stall only extends the same one)."""
    for attempt in range(attempts):
        try:
            return await asyncio.to_thread(call, *args)
        except OSError:  # TimeoutError, URLError
            if attempt == attempts - 1:
                raise


async def _heartbeat_after(database_url: str, instant: dt.datetime) -> bool:
    hb = await _heartbeat_markets(database_url)
    return hb is not None and hb[0] > instant


async def _stall_gaps(database_url: str) -> bool:
    return any(g["cause"] == "stall" and g["gap_end"] is not None for g in await _gaps(database_url))


# -- a dead connection while everything is closed -----------------------------------------------

async def test_dead_connection_is_noticed_while_closed_and_reconnects_slowly_without_a_gap(
        database_url, redis_url, tmp_path):
    """Saturday, 60x: the gateway stops answering anything (SIGSTOP), heartbeats included."""
    clock_vars = clock_env(ct(2026, 12, 5, 12, 0).isoformat(), 60.0, lead_s=2.0)
    sim = SimulatorProcess(seed=5, rate=5, heartbeat_interval=2, clock=clock_vars)
    sim.start()
    stopped = False
    try:
        env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES", **clock_vars)
        c = Collector(settings_for(env), metrics_emit=lambda _: None)
        await c.start()
        try:
            assert set(c.subs.active) == {"ESZ6"}
            os.kill(sim.pid, signal.SIGSTOP)
            stopped = True
            assert await wait_until(lambda: _event(database_url, "disconnected", "dead_connection"), 30)
            # Every market is closed: one attempt per 5 clock minutes (5 real seconds at 60x).
            assert c.session.client.reconnection_settings.get_delay(1) >= 5.0
            os.kill(sim.pid, signal.SIGCONT)
            stopped = False
            assert await wait_until(lambda: _event(database_url, "connected", "reconnect"), 30)
            assert set(c.subs.active) == {"ESZ6"}
        finally:
            await c.stop()
    finally:
        if stopped:
            os.kill(sim.pid, signal.SIGCONT)
        sim.stop()
    events = {(e["event"], e["detail"]): e["at"] for e in await _events(database_url)}
    assert events[("connected", "reconnect")] - events[("disconnected", "dead_connection")] >= dt.timedelta(minutes=5)
    assert await _gaps(database_url) == []  # closed throughout: nothing was missed


async def _event(database_url: str, event: str, detail: str) -> bool:
    return any(e["event"] == event and e["detail"] == detail for e in await _events(database_url))


# -- a restart over the weekend -------------------------------------------------------------------

async def test_killed_after_the_friday_close_and_started_before_the_sunday_open_lost_nothing(
        database_url, redis_url, tmp_path):
    # The clock reaches START 10 s after this: 20 minutes of market in which the processes start.
    friday = clock_env(ct(2026, 12, 4, 15, 58).isoformat(), 120.0, lead_s=10.0)
    sim = SimulatorProcess(seed=17, rate=5, clock=friday)
    sim.start()
    try:
        env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES", **friday)
        proc = CollectorProcess(env, tmp_path / "collector.log")
        proc.start()
        try:
            # Killed once a heartbeat has said that everything up to after the close is recorded.
            assert await wait_until(lambda: _recorded_past(database_url, "ESZ6", ct(2026, 12, 4, 16, 0)), 60)
            proc.signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
        finally:
            proc.kill()
        assert await _assert_complete(sim, database_url, "ESZ6", None, ct(2026, 12, 4, 16, 0)) > 0
    finally:
        sim.stop()

    sunday = clock_env(ct(2026, 12, 6, 16, 58).isoformat(), 120.0, lead_s=10.0)
    sim = SimulatorProcess(seed=17, rate=5, clock=sunday)
    sim.start()
    try:
        env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES", **sunday)
        proc = CollectorProcess(env, tmp_path / "collector.log")
        proc.start()
        try:
            assert await wait_until(lambda: _recorded_past(database_url, "ESZ6", ct(2026, 12, 6, 17, 5)), 60)
            proc.signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 10) == 0
        finally:
            proc.kill()
        assert await _assert_complete(sim, database_url, "ESZ6", ct(2026, 12, 6, 17, 0), ct(2026, 12, 6, 17, 5)) > 0
    finally:
        sim.stop()
    assert await _gaps(database_url) == []
    assert "restart while the market was closed" in (tmp_path / "collector.log").read_text()


async def _recorded_past(database_url: str, symbol: str, instant: dt.datetime) -> bool:
    hb = await _heartbeat_markets(database_url)
    until_ = hb and hb[1].get(symbol, {}).get("recorded_until")
    return bool(until_) and dt.datetime.fromisoformat(until_) > instant


# -- a followed product rolls and its old front month expires --------------------------------------

ROLL_AT = dt.datetime(2026, 12, 9, 23, 0, tzinfo=UTC)  # ESZ6 -> ESH7: 17:00 CT, the open of 10 Dec's session
ESZ6_EXPIRY = dt.datetime(2026, 12, 18, 22, 0, tzinfo=UTC)  # 16:00 CT on its last trading day


@dataclass
class RollMarket:
    """What `roll_market` recorded, for assertions on the collector's side and the API's (ES.c.0,
    /api/rolls/ES). The database then holds ESZ6 trades from 15:5x CT on 2026-12-09 to the 16:00 close,
    both contracts from 17:00 to about 17:10 CT, and ESZ6/ESH7 (and MESZ6, subscribed explicitly) again on
    2026-12-18 from about 15:46 CT to the 16:00 close; rolls holds (NULL -> ESZ6) and (ESZ6 -> ESH7 at
    2026-12-09T23:00:00Z)."""

    database_url: str
    redis_url: str
    complete: dict = field(default_factory=dict)  # (symbol, start, end) -> trades stored = market's
    subscriptions_before_restart: list = field(default_factory=list)
    subscriptions_after_restart: list = field(default_factory=list)
    rolls_before_restart: list = field(default_factory=list)
    rolls_after_restart: list = field(default_factory=list)
    esh7_active_before_roll: bool = False
    first_run_started_at: dt.datetime | None = None
    first_run_events: list = field(default_factory=list)
    first_run_gaps: list = field(default_factory=list)
    subscriptions_after_expiry: list = field(default_factory=list)
    active_after_expiry: set = field(default_factory=set)


async def _roll_scenario(market: RollMarket, tmp_path) -> None:
    db, rds = market.database_url, market.redis_url

    async def complete(sim, symbol, start, end):
        market.complete[(symbol, start, end)] = await _assert_complete(sim, db, symbol, start, end)

    # Wednesday 9 December: the collector follows ES from before the 16:00 close, through the daily
    # halt and the roll at 17:00, and is restarted after it. (The clock reaches 15:57 ten real seconds
    # from now: the processes start in the twenty minutes of market before it.)
    wednesday = clock_env(ct(2026, 12, 9, 15, 57).isoformat(), 120.0, lead_s=10.0)
    sim = SimulatorProcess(seed=41, rate=1, clock=wednesday)
    sim.start()
    try:
        env = collector_env(sim, db, rds, tmp_path, SYMBOLS="ES", COLLECTOR_ID="roll-1", **wednesday)
        c = Collector(settings_for(env), metrics_emit=lambda _: None)
        clock = c.settings.clock
        await c.start()
        market.first_run_started_at = clock.now_dt()
        try:
            await until(clock, ct(2026, 12, 9, 16, 59, 30))
            market.esh7_active_before_roll = "ESH7" in c.subs.active
            await until(clock, ct(2026, 12, 9, 17, 6))
        finally:
            await c.stop()
        market.subscriptions_before_restart = await _subscriptions(db)
        market.rolls_before_restart = await _rolls(db)
        market.first_run_events = [(e["event"], e["detail"]) for e in await _events(db)]
        market.first_run_gaps = await _gaps(db)
        env = collector_env(sim, db, rds, tmp_path, SYMBOLS="ES", COLLECTOR_ID="roll-2", **wednesday)
        c = Collector(settings_for(env), metrics_emit=lambda _: None)
        await c.start()
        try:
            await until(clock, ct(2026, 12, 9, 17, 10))
            market.subscriptions_after_restart = await _subscriptions(db)
            market.rolls_after_restart = await _rolls(db)
            assert await wait_until(lambda: _gaps_settled(db), 20)  # the restart's gap backfilled
        finally:
            await c.stop()
        await complete(sim, "ESZ6", ct(2026, 12, 9, 15, 55), ct(2026, 12, 9, 16, 0))
        await complete(sim, "ESZ6", ct(2026, 12, 9, 17, 0), ct(2026, 12, 9, 17, 10))
        await complete(sim, "ESH7", ct(2026, 12, 9, 17, 0), ct(2026, 12, 9, 17, 10))
    finally:
        sim.stop()

    # Friday 18 December, nine days later (the days between are not simulated): ESZ6 stops trading
    # at 16:00 CT.
    friday = clock_env(ct(2026, 12, 18, 15, 56).isoformat(), 60.0, lead_s=10.0)
    sim = SimulatorProcess(seed=41, rate=1, clock=friday)
    sim.start()
    try:
        # MESZ6 is subscribed explicitly: never rolled, it too ends at its expiry.
        env = collector_env(sim, db, rds, tmp_path, SYMBOLS="ES,MESZ6", COLLECTOR_ID="roll-3", **friday)
        c = Collector(settings_for(env), metrics_emit=lambda _: None)
        clock = c.settings.clock
        await c.start()
        try:
            await until(clock, ct(2026, 12, 18, 16, 2))
            market.active_after_expiry = set(c.subs.active)
            market.subscriptions_after_expiry = await _subscriptions(db)
        finally:
            await c.stop()
        await complete(sim, "ESZ6", ct(2026, 12, 18, 15, 56), ct(2026, 12, 18, 16, 0))
        await complete(sim, "ESH7", ct(2026, 12, 18, 15, 56), ct(2026, 12, 18, 16, 0))
    finally:
        sim.stop()


async def _gaps_settled(database_url: str) -> bool:
    gaps = await _gaps(database_url)
    return bool(gaps) and all(g["gap_end"] is not None and g["backfilled"] for g in gaps)


@pytest.fixture(scope="module")
def roll_market(pg, migrated_template, redis_server, tmp_path_factory):
    """Runs the roll scenario once for the module (about a minute) and yields what it saw."""
    url = pg.create_database(template=migrated_template)
    redis_url = redis_server if isinstance(redis_server, str) else redis_server.url
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    market = RollMarket(url, redis_url)
    try:
        asyncio.run(_roll_scenario(market, tmp_path_factory.mktemp("roll")))
        yield market
    finally:
        pg.drop_database(url)


def _sub(rows, symbol):
    return next(r for r in rows if r[0] == symbol)


def test_no_reconnect_and_no_gap_over_the_daily_halt(roll_market):
    m = roll_market
    assert m.first_run_started_at < ct(2026, 12, 9, 15, 55)  # recording before the 16:00 close
    assert m.first_run_events == [("connected", None), ("disconnected", "shutdown")]
    assert m.first_run_gaps == []
    assert m.complete[("ESZ6", ct(2026, 12, 9, 15, 55), ct(2026, 12, 9, 16, 0))] > 0


def test_followed_product_subscribes_the_new_front_month_for_the_session_open(roll_market):
    m = roll_market
    rolls = [(r[1], r[2], r[3], r[4]) for r in m.rolls_before_restart]
    assert rolls == [("ES", "CME", None, "ESZ6"), ("ES", "CME", "ESZ6", "ESH7")]
    assert m.rolls_before_restart[0][5] < ct(2026, 12, 9, 16, 0)  # following began with ESZ6
    assert m.rolls_before_restart[1][5] == ROLL_AT
    assert m.esh7_active_before_roll  # in the halt, so its session's first trade is recorded
    assert m.complete[("ESH7", ct(2026, 12, 9, 17, 0), ct(2026, 12, 9, 17, 10))] > 0
    # ESZ6 keeps recording after the roll; both are the product's contracts.
    assert m.complete[("ESZ6", ct(2026, 12, 9, 17, 0), ct(2026, 12, 9, 17, 10))] > 0
    assert _sub(m.subscriptions_before_restart, "ES")[2:6] == ("product", None, True, "active")
    assert _sub(m.subscriptions_before_restart, "ESZ6")[2:6] == ("contract", "ES", True, "active")
    assert _sub(m.subscriptions_before_restart, "ESH7")[2:6] == ("contract", "ES", True, "active")


def test_a_restart_in_the_middle_changes_nothing(roll_market):
    m = roll_market
    assert m.rolls_after_restart == m.rolls_before_restart  # same rows, same ids: none written twice
    assert m.subscriptions_after_restart == m.subscriptions_before_restart
    # The few seconds it was down were open market: a restart gap, backfilled, so nothing is missing.
    assert m.complete[("ESH7", ct(2026, 12, 9, 17, 0), ct(2026, 12, 9, 17, 10))] > 0


def test_the_old_front_month_records_until_its_expiry_then_is_expired(roll_market):
    m = roll_market
    assert m.complete[("ESZ6", ct(2026, 12, 18, 15, 56), ct(2026, 12, 18, 16, 0))] > 0
    assert m.active_after_expiry == {"ESH7"}
    esz6 = _sub(m.subscriptions_after_expiry, "ESZ6")
    assert esz6[2:6] == ("contract", "ES", True, "expired")
    assert esz6[6] == "ESZ6 stopped trading at 2026-12-18T22:00:00+00:00"
    # An explicit contract is never rolled (no MESH7) and ends the same way.
    mesz6 = _sub(m.subscriptions_after_expiry, "MESZ6")
    assert mesz6[2:] == ("contract", None, True, "expired", "MESZ6 stopped trading at 2026-12-18T22:00:00+00:00")
    assert "MESH7" not in {r[0] for r in m.subscriptions_after_expiry}
    assert _sub(m.subscriptions_after_expiry, "ESH7")[2:6] == ("contract", "ES", True, "active")
    assert m.complete[("ESH7", ct(2026, 12, 18, 15, 56), ct(2026, 12, 18, 16, 0))] > 0


def test_the_days_not_simulated_are_one_truthful_gap_per_contract(roll_market):
    """Stopped on 9 December, started on 18 December: a real outage over open market, recorded from
    each contract's last stored trade to its first trade after the start, and too long (more than an
    hour of open market) to backfill."""
    gaps = asyncio.run(_gaps(roll_market.database_url))
    skipped = [g for g in gaps if g["gap_end"] is not None and g["gap_end"] > ct(2026, 12, 18, 0, 0)]
    assert sorted(g["symbol"] for g in skipped) == ["ESH7", "ESZ6"]
    for g in skipped:
        assert g["cause"] == "restart" and not g["backfilled"]
        assert ct(2026, 12, 9, 17, 0) < g["gap_start"] < ct(2026, 12, 9, 17, 11)
        assert ct(2026, 12, 18, 15, 30) < g["gap_end"] < ESZ6_EXPIRY  # its first trade after the start
    # The restart on 9 December is the only other gap, one per contract, backfilled.
    others = [g for g in gaps if g not in skipped]
    assert sorted(g["symbol"] for g in others) == ["ESH7", "ESZ6"] and all(g["backfilled"] for g in others)


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_the_api_serves_what_the_collector_recorded_across_the_roll(roll_market, monkeypatch):
    """/api/rolls/ES shows the roll the collector made; /api/bars/ES.c.0 across it is ESZ6's bars before
    17:00 CT and ESH7's from then on."""
    m = roll_market
    with api_client(monkeypatch, DATABASE_URL=m.database_url, REDIS_URL=m.redis_url) as http:
        body = get_json(http, "/api/rolls/ES")
        assert [(r["from"], r["to"]) for r in body["rolls"]] == [(None, "ESZ6"), ("ESZ6", "ESH7")]
        assert dt.datetime.fromisoformat(body["rolls"][1]["at"]) == ROLL_AT

        lo, hi = ct(2026, 12, 9, 15, 55).isoformat(), ct(2026, 12, 9, 17, 10).isoformat()
        query_range = f"interval=1m&start={quote(lo)}&end={quote(hi)}"
        bars = get_json(http, f"/api/bars/ES.c.0?{query_range}")
        assert schema_errors(response_schema("/api/bars/{symbol}", "get", 200), bars) == []
        assert [c["symbol"] for c in bars["contracts"]] == ["ESZ6", "ESH7"]
        before = get_json(http, f"/api/bars/ESZ6?interval=1m&start={quote(lo)}&end={quote(ROLL_AT.isoformat())}")
        after = get_json(http, f"/api/bars/ESH7?interval=1m&start={quote(ROLL_AT.isoformat())}&end={quote(hi)}")
        assert before["data"] and after["data"]  # both sides of the roll were recorded
        assert bars["data"] == before["data"] + after["data"]
