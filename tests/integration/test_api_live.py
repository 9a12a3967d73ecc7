"""GET /api/live/<symbol>: the snapshot the collector's publisher writes to a real Redis, read back by
the API (in-process Chalice, as Lambda runs it) with its age on the clock; 404 when there is none,
503 when Redis is away."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from collector_ecs.live import LivePublisher, MarketState
from collector_ecs.parsing import QuoteBook
from rdc_common.clock import default_clock

from .test_api_support import api_client, closed_port, get_json, response_schema, schema_errors

pytestmark = pytest.mark.integration


def _publish(redis_url: str, when: dt.datetime) -> None:
    market = MarketState()
    market.on_book((when, "ESZ6", "CME", "SNAPSHOT_IMAGE", (6000.0, 5999.75), (5, 7), (2, 3), (6000.25,), (4,),
                    (1,), when))
    market.on_trade((when, "ESZ6", "CME", 6000.25, 2, "BUY", None, when, False))

    class At:
        def now_dt(self):
            return when

    async def go():
        publisher = LivePublisher(market, QuoteBook(), redis_url, At())
        assert await publisher.publish_once() == 1
        await publisher._drop()

    asyncio.run(go())


def test_live_answers_the_published_snapshot_with_its_age_on_the_clock(market, redis_url, monkeypatch):
    published = default_clock().now_dt() - dt.timedelta(seconds=3)
    _publish(redis_url, published)
    with api_client(monkeypatch, DATABASE_URL=market.url, REDIS_URL=redis_url) as http:
        doc = get_json(http, "/api/live/esz6")
    assert schema_errors(response_schema("/api/live/{symbol}", "get", 200), doc) == []
    assert doc["symbol"] == "ESZ6" and doc["exchange"] == "CME"
    assert doc["book"]["bids"] == [{"price": 6000.0, "size": 5, "orders": 2},
                                   {"price": 5999.75, "size": 7, "orders": 3}]
    assert doc["book"]["asks"] == [{"price": 6000.25, "size": 4, "orders": 1}]
    assert doc["last_trade"]["price"] == 6000.25 and doc["trades"] == [doc["last_trade"]]
    # The suite's clock is pinned and runs at real speed: the age is the 3 s we set, plus test time.
    assert 3 <= doc["age_s"] < 60


def test_no_snapshot_is_a_404_sentence_and_a_bad_symbol_a_400(market, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=market.url, REDIS_URL=redis_url) as http:
        doc = get_json(http, "/api/live/NQZ6", status=404)
        assert doc["error"] == "No live data" and "NQZ6" in doc["message"]
        assert get_json(http, "/api/live/not-a-symbol", status=400)["error"]


def test_redis_away_is_a_503_with_retry_after(market, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=market.url, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
                    REDIS_TIMEOUT_S="0.3") as http:
        response = http.get("/api/live/ESZ6")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "Redis" in response.json_body["message"]


def test_the_publisher_rides_out_redis_being_away_and_publishes_once_it_answers(redis_url):
    """Recording never depends on Redis: a failed write keeps the symbols to publish for the next try."""
    import redis

    market = MarketState()
    now = default_clock().now_dt()
    market.on_trade((now, "CLF7", "NYMEX", 60.5, 1, "SELL", None, now, False))

    async def go():
        away = LivePublisher(market, QuoteBook(), f"redis://127.0.0.1:{closed_port()}/0", default_clock())
        stop = asyncio.Event()
        task = asyncio.create_task(away.run(stop))
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.wait_for(task, 10)  # ends cleanly, having logged the outage instead of raising
        assert away.published == 0 and market.changed == {"CLF7"}
        back = LivePublisher(market, QuoteBook(), redis_url, default_clock())
        assert await back.publish_once() == 1
        await back._drop()

    asyncio.run(go())
    client = redis.Redis.from_url(redis_url)
    try:
        assert b'"symbol":"CLF7"' in client.get("rdc:live:CLF7")
        assert 0 < client.ttl("rdc:live:CLF7") <= 24 * 3600
    finally:
        client.close()
