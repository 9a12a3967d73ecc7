"""What the API does when PostgreSQL or Redis is missing, slow or restricted, and under concurrent requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

from rdc_common.clock import default_clock
from tests.integration.test_api_support import (
    api_client,
    closed_port,
    execute,
    fetch,
    get_json,
    response_schema,
    schema_errors,
    tick,
    write_rows,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

UTC = dt.UTC
PASSWORD = "pw-that-must-not-leak-7731"


def _down_url() -> str:
    return f"postgresql://rdc_api:{PASSWORD}@127.0.0.1:{closed_port()}/rithmic_db"


def test_health_reports_the_collector_heartbeat(database_url, redis_url, monkeypatch):
    seen = default_clock().now_dt() - dt.timedelta(seconds=2)
    # The collector's heartbeat row, as its health task writes it.
    latency = {"ESZ6": {"p50_ms": 0.812, "p99_ms": 2.406, "samples": 311, "as_of": seen.isoformat()}}
    execute(database_url, "INSERT INTO collector_heartbeat (collector_id, connected, last_message_at, messages_per_s, "
                          f"queue_depth, spool_bytes, latency, updated_at) VALUES ('c-1', true, '{seen.isoformat()}', "
                          f"812.5, 3, 0, '{json.dumps(latency)}', '{default_clock().now_dt().isoformat()}')")
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/health")
        collector = body["collector"]
        assert (collector["collector_id"], collector["connected"], collector["messages_per_s"],
                collector["queue_depth"]) == ("c-1", True, 812.5, 3)
        assert dt.datetime.fromisoformat(collector["last_message_at"]) == seen
        assert collector["age_s"] >= 0
        assert collector["latency"] == latency  # exchange-to-collector latency per symbol, as the collector wrote it
        assert collector["markets"] == {}  # a heartbeat from before markets were reported
        assert schema_errors(response_schema("/health", "get", 200), body) == []


def test_health_reports_each_symbols_market_as_the_collector_saw_it(database_url, redis_url, monkeypatch):
    markets = {"ESZ6": {"market": "closed", "trade_date": None, "next_open": "2026-12-06T23:00:00+00:00",
                        "next_close": None, "last_trade_at": "2026-12-04T21:59:59.871000+00:00",
                        "recorded_until": "2026-12-05T14:00:00+00:00"},
               "CLF7": {"market": "open", "trade_date": "2026-12-07", "next_open": None,
                        "next_close": "2026-12-07T22:00:00+00:00", "last_trade_at": None, "recorded_until": None}}
    execute(database_url, "INSERT INTO collector_heartbeat (collector_id, connected, updated_at, markets) "
                          f"VALUES ('c-1', true, '{default_clock().now_dt().isoformat()}', "
                          f"'{json.dumps(markets)}'::jsonb)")
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/health")
        assert body["collector"]["markets"] == markets
        assert schema_errors(response_schema("/health", "get", 200), body) == []
        broken = {**body, "collector": {**body["collector"], "markets": {"ESZ6": {**markets["ESZ6"],
                                                                                   "market": "asleep"}}}}
        assert schema_errors(response_schema("/health", "get", 200), broken) != []  # the schema does check it


def test_database_down_is_503_without_secrets(redis_url, monkeypatch, capsys):
    with api_client(monkeypatch, DATABASE_URL=_down_url(), REDIS_URL=redis_url) as http:
        health = http.get("/health")
        assert health.status_code == 503
        assert health.json_body["status"] == "unhealthy"
        assert health.json_body["services"] == {"database": "unavailable", "redis": "connected"}
        assert schema_errors(response_schema("/health", "get", 503), health.json_body) == []
        for path in ("/api/ticks/ESZ6", "/api/stats", "/api/symbols", "/api/book/ESZ6", "/api/bars/ESZ6",
                     "/api/subscriptions"):
            response = http.get(path)
            assert response.status_code == 503, path
            body = response.json_body
            assert set(body) == {"error", "message", "request_id"} and body["error"] == "Database unavailable"
            assert PASSWORD not in response.body.decode() and "postgresql://" not in response.body.decode()
            assert "Traceback" not in response.body.decode()
    assert PASSWORD not in capsys.readouterr().out


def test_redis_down_makes_health_503(database_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0") as http:
        response = http.get("/health")
        assert response.status_code == 503
        assert response.json_body["services"] == {"database": "connected", "redis": "unavailable"}
        assert get_json(http, "/api/ticks/ESZ6")["count"] == 0  # reads need no Redis


def test_the_api_recovers_when_the_database_comes_back(database_url, redis_url, monkeypatch, pg):
    """A pooled connection killed under the API (a restart, a proxy's idle timeout) is replaced."""
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        assert get_json(http, "/api/ticks/ESZ6")["count"] == 0
        name = urlsplit(database_url).path.lstrip("/")
        admin = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
        killed = fetch(admin, "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
                              "WHERE datname = $1 AND application_name = 'rdc-api'", name)[0]["n"]
        assert killed >= 1
        assert get_json(http, "/api/ticks/ESZ6")["count"] == 0


def test_every_statement_runs_under_the_statement_timeout(database_url, redis_url, monkeypatch):
    from chalicelib.db import get_db
    from chalicelib.errors import QueryTimeout

    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url, DB_STATEMENT_TIMEOUT_MS="300"):
        assert get_db().fetchval("SHOW statement_timeout") == "300ms"
        with pytest.raises(QueryTimeout, match="300 ms"):
            get_db().fetchval("SELECT pg_sleep(3)")
        assert get_db().fetchval("SELECT 1") == 1  # the pool is fine afterwards


def test_stats_are_exact_zero_when_nothing_arrived_in_the_last_hour(database_url, redis_url, monkeypatch):
    old = default_clock().now_dt() - dt.timedelta(hours=5)
    write_rows(database_url, "tick_data", [tick(old + dt.timedelta(seconds=i), "ESZ6", 6000.0, 1, "BUY")
                                           for i in range(10)])
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        body = get_json(http, "/api/stats")
        assert body["tick_data"]["total_records"] == 10 and body["tick_data"]["unique_symbols"] == 1
        assert body["tick_data"]["recent_hour_count"] == 0 and body["tick_data"]["estimated"] == []
        assert body["level2_data"]["total_records"] == 0 and body["level2_data"]["latest_timestamp"] is None


def test_the_api_works_as_its_read_only_database_role(database_url, redis_url, monkeypatch):
    """sql/002_roles.sql: rdc_api reads market data and writes only subscriptions."""
    role = "rdc_api_t_" + uuid.uuid4().hex[:8]
    execute(database_url, f"CREATE ROLE {role} LOGIN IN ROLE rdc_api")
    try:
        write_rows(database_url, "tick_data", [tick(default_clock().now_dt(), "ESZ6", 6000.0, 2, "SELL")])
        as_role = urlunsplit(urlsplit(database_url)._replace(netloc=f"{role}@{urlsplit(database_url).hostname}:"
                                                                    f"{urlsplit(database_url).port}"))
        with api_client(monkeypatch, DATABASE_URL=as_role, REDIS_URL=redis_url) as http:
            for path in ("/health", "/api/stats", "/api/symbols", "/api/ticks/ESZ6", "/api/level2/ESZ6",
                         "/api/quotes/ESZ6", "/api/bars/ESZ6", "/api/subscriptions"):
                assert http.get(path).status_code == 200, path
            assert http.post("/api/subscribe/ESZ6").status_code == 200
            assert http.delete("/api/subscribe/ESZ6").status_code == 200
        with pytest.raises(Exception, match="permission denied"):
            execute(as_role, "DELETE FROM tick_data")
    finally:
        execute(database_url, f"DROP ROLE IF EXISTS {role}")


def test_concurrent_requests_on_threads_each_get_their_own_answer(database_url, redis_url, monkeypatch):
    """`chalice local` serves each request on its own thread, all sharing the app and one pool."""
    now = default_clock().now_dt()
    symbols = ["ESZ6", "NQZ6", "CLF7", "GCZ6"]
    write_rows(database_url, "tick_data", [tick(now - dt.timedelta(seconds=i), s, 100.0 + k, k + 1, "BUY")
                                           for k, s in enumerate(symbols) for i in range(5 + k)])
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url, DB_POOL_MAX_SIZE="3") as http:
        barrier = threading.Barrier(8)

        def one(i: int):
            symbol, limit = symbols[i % 4], 1 + i % 3
            barrier.wait(timeout=10)
            response = http.get(f"/api/ticks/{symbol}?limit={limit}")
            return symbol, limit, response

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(64)))
        for symbol, limit, response in results:
            assert response.status_code == 200
            body = response.json_body
            assert (body["symbol"], body["limit"], body["count"]) == (symbol, limit, limit)
            assert {d["symbol"] for d in body["data"]} == {symbol}
