"""GET /api/gaps/<symbol>: the outages the collector recorded, as a user reads them back."""

import asyncio
import datetime as dt

import pytest

from collector_ecs.control import ControlStore
from rdc_common.clock import default_clock

from .test_api_support import api_client, get_json, response_schema, schema_errors

pytestmark = pytest.mark.integration
NOW = default_clock().now_dt().replace(microsecond=0)


def record_gaps(url):
    """Gaps written the way the collector writes them (its ControlStore)."""
    async def go():
        store = ControlStore(url, timeout=5)
        try:
            a = await store.open_gap("ESZ6", "CME", NOW - dt.timedelta(hours=2), None, "disconnect")
            await store.close_gap(a, NOW - dt.timedelta(hours=2) + dt.timedelta(seconds=9), True, 41)
            await store.open_gap("ESZ6", "CME", NOW - dt.timedelta(minutes=5), NOW - dt.timedelta(minutes=4),
                                 "spool_full:quote_data", 1200)
            await store.open_gap("ESZ6", "CME", NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=20, seconds=-3),
                                 "stall")
            await store.open_gap("CLF7", "NYMEX", NOW - dt.timedelta(hours=1), NOW, "restart")
        finally:
            await store.close()
    asyncio.run(go())


def test_gaps_in_a_range_with_cause_and_backfill(database_url, redis_url, monkeypatch):
    record_gaps(database_url)
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/api/gaps/esz6")
        assert schema_errors(response_schema("/api/gaps/{symbol}", "get", 200), body) == []
        assert body["symbol"] == "ESZ6" and body["count"] == 2  # the 20-day-old one is outside 7 days
        first, second = body["data"]
        assert (first["cause"], first["backfilled"], first["backfilled_rows"]) == ("disconnect", True, 41)
        assert dt.datetime.fromisoformat(first["end"]) - dt.datetime.fromisoformat(first["start"]) == \
            dt.timedelta(seconds=9)
        assert (second["cause"], second["dropped_rows"], second["backfilled"]) == ("spool_full:quote_data", 1200,
                                                                                  False)
        start = (NOW - dt.timedelta(days=21)).isoformat()
        end = (NOW - dt.timedelta(days=19)).isoformat()
        old = get_json(http, f"/api/gaps/ESZ6?start={start}&end={end}")
        assert [g["cause"] for g in old["data"]] == ["stall"]


def test_gaps_reject_bad_ranges(database_url, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/api/gaps/ESZ6?start=2026-11-24T00:00:00Z&end=2026-11-23T00:00:00Z", status=400)
        assert "must be before end" in body["message"]
        body = get_json(http, "/api/gaps/NOT-A-SYMBOL", status=400)
        assert "ESZ6" in body["message"]
        body = get_json(http, "/api/gaps/ESZ6?start=yesterday", status=400)
        assert "ISO-8601" in body["message"]
