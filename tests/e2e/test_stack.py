"""The product as a user meets it: `make run`'s stack, spoken to only over HTTP through NGINX.

Ticks for the default symbols arrive, a new subscription starts delivering, the old README's curl
examples answer in the contract's shapes, and Ctrl-C leaves no process and no listening port.
The tests run in file order against one stack; the last one stops it.
"""

from __future__ import annotations

import json
import time

import pytest

from devstack.testing import get_json, http
from rdc_common.calendar import front_contract
from rdc_common.clock import default_clock
from rdc_common.products import DEFAULT_PRODUCTS

pytestmark = pytest.mark.e2e

# The stack inherits the suite's clock (tests/conftest.py), so its front months are these.
NOW = default_clock().now()
DEFAULT_SYMBOLS = [front_contract(code, NOW).symbol for code in DEFAULT_PRODUCTS]
NEW_SYMBOL = front_contract("YM", NOW).symbol  # CBOT: not among the defaults
README_SUBSCRIBE = front_contract("GC", NOW).symbol
TICK_KEYS = {"timestamp", "symbol", "price", "volume", "direction", "trade_type", "exchange"}
LEVEL2_KEYS = {"timestamp", "symbol", "update_type", "bids", "asks", "depth"}


def wait_for(url: str, until, deadline: float, what: str) -> dict:
    last = None
    while True:
        status, doc = get_json(url)
        last = (status, doc)
        if status == 200 and until(doc):
            return doc
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within the time allowed; last answer {str(last)[:500]}")
        time.sleep(0.5)


def test_health_is_healthy_through_nginx(stack):
    status, headers, body = http("GET", stack.http_url + "/health")
    doc = json.loads(body)
    assert status == 200
    assert doc["status"] == "healthy"
    assert doc["services"] == {"database": "connected", "redis": "connected"}
    assert headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["server"] == "nginx"


def test_ticks_for_the_default_symbols_arrive_within_30s(stack):
    deadline = stack.healthy_at + 30
    for symbol in DEFAULT_SYMBOLS:
        doc = wait_for(f"{stack.http_url}/api/ticks/{symbol}?limit=10", lambda d: d["count"] == 10, deadline,
                       f"10 ticks for {symbol}")
        assert doc["symbol"] == symbol and doc["limit"] == 10 and len(doc["data"]) == 10
        assert {row["symbol"] for row in doc["data"]} == {symbol}


def test_subscribing_a_new_symbol_brings_its_ticks_within_30s(stack):
    status, _, body = http("POST", f"{stack.http_url}/api/subscribe/{NEW_SYMBOL.lower()}", b"")
    doc = json.loads(body)
    assert status == 200, doc
    assert doc["status"] == "subscribed" and doc["symbol"] == NEW_SYMBOL and doc["exchange"] == "CBOT"
    deadline = time.monotonic() + 30
    ticks = wait_for(f"{stack.http_url}/api/ticks/{NEW_SYMBOL}?limit=5", lambda d: d["count"] > 0, deadline,
                     f"ticks for newly subscribed {NEW_SYMBOL}")
    assert ticks["data"][0]["exchange"] == "CBOT"


# --- the old README's "Verify Installation" and "Example API Calls", against the new stack ----


def test_readme_symbols(stack):
    status, doc = get_json(stack.http_url + "/api/symbols")
    assert status == 200
    assert doc["count"] == len(doc["symbols"])
    listed = {s["symbol"]: s for s in doc["symbols"]}
    assert set(DEFAULT_SYMBOLS) <= listed.keys()
    es = listed[DEFAULT_SYMBOLS[0]]
    assert {"symbol", "exchange", "tick_count", "last_tick_update", "level2_count", "last_level2_update"} <= es.keys()
    assert es["exchange"] == "CME" and es["tick_count"] > 0


def test_readme_ticks(stack):
    symbol = DEFAULT_SYMBOLS[0]
    status, doc = get_json(f"{stack.http_url}/api/ticks/{symbol}?limit=50")
    assert status == 200
    assert doc["symbol"] == symbol and doc["limit"] == 50 and doc["count"] == len(doc["data"]) <= 50
    row = doc["data"][0]
    assert TICK_KEYS <= row.keys()
    assert row["direction"] in ("BUY", "SELL", None) and row["volume"] > 0 and row["price"] > 0
    stamps = [r["timestamp"] for r in doc["data"]]
    assert stamps == sorted(stamps, reverse=True), "newest first"
    status, doc = get_json(f"{stack.http_url}/api/ticks/{symbol}?limit=0")
    assert status == 400 and {"error", "message"} <= set(doc)


def test_readme_level2(stack):
    symbol = DEFAULT_SYMBOLS[2]  # CL, as in the README
    doc = wait_for(f"{stack.http_url}/api/level2/{symbol}?limit=20", lambda d: d["count"] > 0,
                   time.monotonic() + 30, f"level 2 for {symbol}")
    assert doc["symbol"] == symbol and doc["limit"] == 20 and doc["count"] <= 20
    row = doc["data"][0]
    assert LEVEL2_KEYS <= row.keys()
    level = (row["bids"] or row["asks"])[0]
    assert {"price", "size", "orders"} <= level.keys()


def test_readme_subscribe_with_exchange(stack):
    status, _, body = http("POST", f"{stack.http_url}/api/subscribe/{README_SUBSCRIBE}",
                           json.dumps({"exchange": "COMEX"}).encode())
    doc = json.loads(body)
    assert status == 200, doc
    assert doc == {"status": "subscribed", "symbol": README_SUBSCRIBE, "exchange": "COMEX",
                   "message": f"Subscription request for {README_SUBSCRIBE} has been queued"}
    status, _, body = http("POST", f"{stack.http_url}/api/subscribe/NOT-A-SYMBOL", b"{}")
    assert status == 400 and {"error", "message"} <= set(json.loads(body))


def test_readme_stats(stack):
    status, doc = get_json(stack.http_url + "/api/stats")
    assert status == 200
    assert doc["tick_data"]["total_records"] > 0
    assert doc["tick_data"]["unique_symbols"] >= len(DEFAULT_SYMBOLS)
    assert "level2_data" in doc and "timestamp" in doc


def test_only_the_api_and_its_pages_are_exposed(stack):
    status, headers, body = http("GET", stack.http_url + "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'data-testid="price-chart"' in body  # the web console
    for path in ("/admin", "/api", "/index.html"):
        status, headers, body = http("GET", stack.http_url + path)
        assert status == 404 and headers["content-type"] == "application/json"
        assert set(json.loads(body)) == {"error", "message"}


def test_ctrl_c_leaves_no_process_and_no_listening_port(stack):
    assert stack.pids, "devstack recorded the processes it started"
    code = stack.interrupt()
    assert code == 0, stack.read_output()[-3000:]
    assert stack.leftovers() == []
    assert stack.listening() == []
    output = stack.read_output()
    assert "stopping collector" in output and "stopped." in output
