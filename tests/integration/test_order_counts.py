"""Order counts per book level, from the simulator through the collector to the API: what /api/book,
/api/level2 and /api/quotes show is the simulator's market (the same model market-by-order depth
replays), not null."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from collector_ecs.service import Collector
from rdc_common.calendar import contract_at
from simulator.market import Market, RateTimeline, book_at
from simulator.testing import SimulatorProcess

from .collector_helpers import collector_env, settings_for
from .test_api_support import api_client, get_json, iso

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

SEED, RATE = 23, 300


@pytest.fixture
def sim():
    s = SimulatorProcess(seed=SEED, rate=RATE)
    s.start()
    yield s
    s.stop()


async def _last_level2(database_url: str, symbol: str) -> dt.datetime:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval('SELECT max("timestamp") FROM level2_data WHERE symbol = $1', symbol)
    finally:
        await conn.close()


async def test_books_and_quotes_carry_the_simulators_order_counts(sim, database_url, redis_url, tmp_path,
                                                                  monkeypatch):
    env = collector_env(sim, database_url, redis_url, tmp_path, SYMBOLS="ES")
    collector = Collector(settings_for(env), metrics_emit=lambda _: None)
    await collector.start()
    try:
        assert set(collector.subs.active) == {"ESZ6"}
        await asyncio.sleep(3)
    finally:
        await collector.stop()
    last = await _last_level2(database_url, "ESZ6")
    assert last is not None

    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        book = await asyncio.to_thread(get_json, http, f"/api/book/ESZ6?at={iso(last)}&depth=10")
        continuous = await asyncio.to_thread(get_json, http, f"/api/book/ES.c.0?at={iso(last)}&depth=10")
        level2 = await asyncio.to_thread(get_json, http, "/api/level2/ESZ6?limit=200")
        quotes = await asyncio.to_thread(get_json, http, "/api/quotes/ESZ6?limit=200")

    # The book the API rebuilt is the simulator's at that instant, order counts included.
    market = Market(seed=SEED, rates=RateTimeline(RATE))
    inst = market.instrument(contract_at("ESZ6", last.timestamp()))
    second = int(last.timestamp())
    state = book_at(market, inst, second, market.tape(inst, second).index_after(last.microsecond))
    want_bids = [{"price": inst.price(px), "size": q, "orders": state.bid_orders[px]}
                 for px, q in sorted(state.bids.items(), reverse=True)]
    want_asks = [{"price": inst.price(px), "size": q, "orders": state.ask_orders[px]}
                 for px, q in sorted(state.asks.items())]
    assert (book["bids"], book["asks"]) == (want_bids, want_asks)
    assert all(1 <= lv["orders"] <= lv["size"] for lv in book["bids"] + book["asks"])
    # At the suite's instant ESZ6 is the front month: ES.c.0's book is the same one.
    assert continuous["contract"] == "ESZ6" and (continuous["bids"], continuous["asks"]) == (want_bids, want_asks)

    for row in level2["data"]:
        for lv in row["bids"] + row["asks"]:
            assert isinstance(lv["orders"], int) and (lv["orders"] == 0) == (lv["size"] == 0), lv
    assert quotes["count"] > 0
    for q in quotes["data"]:
        assert 1 <= q["bid_orders"] <= q["bid_size"] and 1 <= q["ask_orders"] <= q["ask_size"], q
