"""The old API's contract, kept to the letter, over data the collector's writer stored in real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rdc_common.clock import default_clock
from tests.integration.test_api_support import (
    fetch,
    get_json,
    response_schema,
    schema_errors,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

TICK_KEYS = {"timestamp", "symbol", "price", "volume", "direction", "trade_type", "exchange"}
LEVEL2_KEYS = {"timestamp", "symbol", "update_type", "bids", "asks", "depth"}


def _db_ticks(market, symbol: str, order: str = "DESC") -> list:
    sql = ('SELECT id, "timestamp", price, size, aggressor, exchange, backfilled FROM tick_data WHERE symbol = $1 '
           'ORDER BY "timestamp" ' + order + ", id " + order)
    return fetch(market.url, sql, symbol)


def _as_api(row) -> tuple:
    return (row["timestamp"].isoformat(timespec="microseconds"), row["price"], row["size"], row["aggressor"])


def test_health_answers_200_when_postgres_and_redis_answer(http):
    body = get_json(http, "/health")
    assert body["status"] == "healthy"
    assert body["services"] == {"database": "connected", "redis": "connected"}
    stamp = dt.datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((default_clock().now_dt() - stamp).total_seconds()) < 60
    assert schema_errors(response_schema("/health", "get", 200), body) == []


def test_ticks_default_to_the_latest_100_newest_first(http, market):
    body = get_json(http, "/api/ticks/ESZ6")
    assert {"symbol", "count", "limit", "data"} <= set(body)
    assert (body["symbol"], body["count"], body["limit"]) == ("ESZ6", 100, 100)
    expected = [_as_api(r) for r in _db_ticks(market, "ESZ6")[:100]]
    assert [(d["timestamp"], d["price"], d["volume"], d["direction"]) for d in body["data"]] == expected
    for item in body["data"]:
        assert TICK_KEYS <= set(item)
        assert item["trade_type"] == "trade" and item["symbol"] == "ESZ6" and item["exchange"] == "CME"
        assert item["direction"] in ("BUY", "SELL", None)
        assert isinstance(item["price"], float) and isinstance(item["volume"], int)
        assert dt.datetime.fromisoformat(item["timestamp"]).utcoffset() == dt.timedelta(0)
    assert schema_errors(response_schema("/api/ticks/{symbol}", "get", 200), body) == []


def test_ticks_carry_exchange_nanoseconds_as_a_string_and_the_gateway_stamp_beside(http, market):
    """timestamp_ns is the stored nanoseconds, exactly, as a decimal string; rows without them (stored
    before sql/005, or backfilled) read as before, their timestamp_ns the microseconds x 1000 and no
    gateway stamp; timestamp itself keeps the contract's ISO microsecond form."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for symbol in ("ESZ6", "NQZ6"):
        body = get_json(http, f"/api/ticks/{symbol}?limit=1000")
        rows = fetch(market.url, 'SELECT "timestamp", timestamp_ns, gateway_at, backfilled FROM tick_data '
                     'WHERE symbol = $1 ORDER BY "timestamp" DESC, id DESC', symbol)
        assert len(body["data"]) == len(rows) > 0
        for item, row in zip(body["data"], rows, strict=True):
            micros = (row["timestamp"] - epoch) // dt.timedelta(microseconds=1)
            assert item["timestamp"] == row["timestamp"].isoformat(timespec="microseconds")
            assert isinstance(item["timestamp_ns"], str)
            if row["timestamp_ns"] is None:
                assert item["timestamp_ns"] == str(micros * 1000) and item["gateway_at"] is None
            else:
                assert item["timestamp_ns"] == str(row["timestamp_ns"]) and int(item["timestamp_ns"]) // 1000 == micros
                assert item["gateway_at"] == row["gateway_at"].isoformat(timespec="microseconds")
                assert dt.datetime.fromisoformat(item["gateway_at"]) > row["timestamp"]
        assert schema_errors(response_schema("/api/ticks/{symbol}", "get", 200), body) == []
    live = [d for d in get_json(http, "/api/ticks/ESZ6?limit=1000")["data"] if not d["backfilled"]]
    assert any(int(d["timestamp_ns"]) % 1000 for d in live), "live trades keep their sub-microsecond digits"


def test_backfilled_trades_are_marked(http, market):
    body = get_json(http, "/api/ticks/ESZ6?limit=1000")
    assert sum(d["backfilled"] for d in body["data"]) == sum(r["backfilled"] for r in _db_ticks(market, "ESZ6"))


@pytest.mark.parametrize("limit, applied", [("1", 1), ("37", 37), ("1000", 1000), ("1001", 1000), ("50000", 1000)])
def test_tick_limit_is_capped_at_1000_and_echoed(http, market, limit, applied):
    body = get_json(http, f"/api/ticks/ESZ6?limit={limit}")
    assert body["limit"] == applied
    assert body["count"] == min(applied, market.counts["ESZ6"]) == len(body["data"])


@pytest.mark.parametrize("route", ["ticks", "level2", "quotes"])
@pytest.mark.parametrize("limit", ["0", "-5", "abc", "2.5", ""])
def test_zero_negative_and_non_integer_limits_are_400(http, route, limit):
    body = get_json(http, f"/api/{route}/ESZ6?limit={limit}", 400)
    assert body["error"] == "Invalid limit" and "whole number from 1 to" in body["message"]
    assert body["request_id"]


def test_symbols_in_paths_are_case_insensitive(http):
    body = get_json(http, "/api/ticks/nqz6?limit=1000")
    assert body["symbol"] == "NQZ6" and body["count"] == 30
    assert {d["symbol"] for d in body["data"]} == {"NQZ6"}


def test_a_symbol_without_data_answers_an_empty_page(http):
    body = get_json(http, "/api/ticks/CLF7")
    assert (body["count"], body["data"], body["next_cursor"]) == (0, [], None)


def test_level2_defaults_to_the_latest_50_and_caps_at_500(http, market):
    body = get_json(http, "/api/level2/ESZ6")
    assert (body["symbol"], body["count"], body["limit"]) == ("ESZ6", 50, 50)
    rows = fetch(market.url, 'SELECT * FROM level2_data WHERE symbol = $1 ORDER BY "timestamp" DESC, id DESC '
                             "LIMIT 50", "ESZ6")
    for item, row in zip(body["data"], rows, strict=True):
        assert LEVEL2_KEYS <= set(item)
        assert item["timestamp"] == row["timestamp"].isoformat(timespec="microseconds")
        assert item["update_type"] == row["update_type"]
        assert item["bids"] == [{"price": p, "size": s, "orders": o}
                                for p, s, o in zip(row["bid_price"], row["bid_size"], row["bid_orders"], strict=True)]
        assert item["asks"] == [{"price": p, "size": s, "orders": o}
                                for p, s, o in zip(row["ask_price"], row["ask_size"], row["ask_orders"], strict=True)]
        assert item["depth"] == max(len(row["bid_price"]), len(row["ask_price"]))
    capped = get_json(http, "/api/level2/ESZ6?limit=501")
    assert capped["limit"] == 500 and capped["count"] == 500
    assert schema_errors(response_schema("/api/level2/{symbol}", "get", 200), body) == []


def test_snapshot_rows_show_every_level(http, market):
    body = get_json(http, "/api/level2/GCZ6")
    assert body["count"] == 4
    item = body["data"][0]
    assert item["update_type"] == "SNAPSHOT_IMAGE" and item["exchange"] == "COMEX"
    assert item["bids"] == [{"price": 2650.0, "size": 3, "orders": 1}]
    assert item["asks"] == [{"price": 2650.1, "size": 4, "orders": 2}]


@pytest.mark.parametrize("path", ["/api/ticks/ES", "/api/level2/ESZ66", "/api/quotes/ES-Z6", "/api/bars/E%20Z6",
                                  "/api/book/ESA6", "/api/ticks/ESZ6%3BDROP"])
def test_malformed_symbols_are_400_with_the_grammar(http, path):
    body = get_json(http, path, 400)
    assert body["error"] == "Invalid symbol"
    assert "product code + month code" in body["message"] and "ESZ6" in body["message"]


def test_stats_come_from_the_counters_exactly(http, market):
    body = get_json(http, "/api/stats")
    assert schema_errors(response_schema("/api/stats", "get", 200), body) == []
    ticks = body["tick_data"]
    truth = fetch(market.url, 'SELECT count(*) AS n, count(DISTINCT symbol) AS s, min("timestamp") AS lo, '
                              'max("timestamp") AS hi FROM tick_data')[0]
    assert ticks["total_records"] == truth["n"]
    assert ticks["unique_symbols"] == truth["s"] == 3
    assert ticks["earliest_timestamp"] == truth["lo"].isoformat(timespec="microseconds")
    assert ticks["latest_timestamp"] == truth["hi"].isoformat(timespec="microseconds")
    level2 = body["level2_data"]
    assert level2["total_records"] == market.counts["level2"]
    assert body["quote_data"]["total_records"] == market.counts["quotes"]
    # Trades within the last hour, counted in whole minutes from the minute an hour ago.
    assert ticks["estimated"] == []
    since = dt.datetime.fromisoformat(body["timestamp"]) - dt.timedelta(hours=1)
    since = since.replace(second=0, microsecond=0)
    recent = fetch(market.url, 'SELECT count(*) AS n FROM tick_data WHERE "timestamp" >= $1', since)[0]["n"]
    assert recent > 0
    assert ticks["recent_hour_count"] == recent
    assert "whole minutes" in body["notes"]


def test_symbols_lists_the_last_24_hours(http, market):
    body = get_json(http, "/api/symbols")
    assert schema_errors(response_schema("/api/symbols", "get", 200), body) == []
    by_symbol = {s["symbol"]: s for s in body["symbols"]}
    assert set(by_symbol) == {"ESZ6", "GCZ6", "NQZ6"}  # ZNZ6 traded three days ago
    assert body["count"] == 3
    es = by_symbol["ESZ6"]
    last = fetch(market.url, 'SELECT max("timestamp") AS t FROM tick_data WHERE symbol = $1', "ESZ6")[0]["t"]
    assert es["exchange"] == "CME" and es["last_tick_update"] == last.isoformat(timespec="microseconds")
    assert es["tick_count"] > 0 and es["level2_count"] > 0
    gc = by_symbol["GCZ6"]
    assert gc["exchange"] == "COMEX" and gc["tick_count"] == 0 and gc["last_tick_update"] is None
    assert gc["level2_count"] >= 1 and gc["last_level2_update"] is not None
    assert body["estimated"] == []
    day_ago = (default_clock().now_dt() - dt.timedelta(hours=24)).replace(second=0, microsecond=0)
    n = fetch(market.url, 'SELECT count(*) AS n FROM tick_data WHERE symbol=$1 AND "timestamp" >= $2', "ESZ6", day_ago)
    assert es["tick_count"] == n[0]["n"]


@pytest.mark.parametrize("method, path", [("POST", "/"), ("GET", "/nope"), ("GET", "/api/nothing"),
                                          ("POST", "/api/ticks"), ("GET", "/api/ticks/ESZ6/extra"),
                                          ("DELETE", "/a/b/c/d")])
def test_unknown_routes_are_404_in_the_error_shape(http, method, path):
    response = http.request(method, path)
    assert response.status_code == 404
    body = response.json_body
    assert set(body) == {"error", "message", "request_id"} and body["error"] == "Not found"
    assert "/openapi.json" in body["message"]


def test_a_wrong_method_is_405_in_the_error_shape(http):
    response = http.request("PUT", "/api/ticks/ESZ6")
    assert response.status_code == 405
    body = response.json_body
    assert set(body) == {"error", "message", "request_id"} and "GET" in body["message"]


def test_every_response_carries_its_request_id(http):
    ok = http.get("/api/ticks/ESZ6?limit=1")
    bad = http.get("/api/ticks/ESZ6?limit=0")
    assert ok.headers["X-Request-Id"] and bad.headers["X-Request-Id"]
    assert bad.json_body["request_id"] == bad.headers["X-Request-Id"]
    assert ok.headers["X-Request-Id"] != bad.headers["X-Request-Id"]
    forwarded = http.get("/api/ticks/ESZ6?limit=0", headers={"X-Request-Id": "nginx-abc123"})
    assert forwarded.json_body["request_id"] == "nginx-abc123"


def test_rows_served_are_published_as_a_cloudwatch_metric(http, capsys):
    capsys.readouterr()
    get_json(http, "/api/ticks/ESZ6?limit=7")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf, "no embedded-metric line was printed"
    (metric,) = [m for m in emf if "RowsServed" in m]
    assert metric["RowsServed"] == [7.0]
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RithmicDataCollector"


def test_openapi_document_is_served(http):
    doc = get_json(http, "/openapi.json")
    assert doc["openapi"].startswith("3.") and "/api/ticks/{symbol}" in doc["paths"]
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"
