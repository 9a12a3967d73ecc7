"""Bars from stored trades and the order book at an instant, checked against computations of their own."""

from __future__ import annotations

import datetime as dt

import pytest

from rdc_common.clock import default_clock
from tests.integration.test_api_support import (
    fetch,
    get_json,
    iso,
    response_schema,
    schema_errors,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

UTC = dt.UTC
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=UTC)
WIDTHS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1), "5m": dt.timedelta(minutes=5),
          "15m": dt.timedelta(minutes=15), "1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}


def expected_bars(trades: list, width: dt.timedelta, lo: dt.datetime, hi: dt.datetime) -> list[dict]:
    """Bars computed here, in plain Python, from the trades as stored."""
    buckets: dict[dt.datetime, list] = {}
    for t in sorted(trades, key=lambda t: (t["timestamp"], t["id"])):
        if lo <= t["timestamp"] < hi:
            start = t["timestamp"] - ((t["timestamp"] - ORIGIN) % width)
            buckets.setdefault(start, []).append(t)
    out = []
    for start, ts in sorted(buckets.items()):
        volume = sum(t["size"] for t in ts)
        out.append({
            "timestamp": start.isoformat(timespec="microseconds"),
            "open": ts[0]["price"], "high": max(t["price"] for t in ts), "low": min(t["price"] for t in ts),
            "close": ts[-1]["price"], "volume": volume, "trades": len(ts),
            "buy_volume": sum(t["size"] for t in ts if t["aggressor"] == "BUY"),
            "sell_volume": sum(t["size"] for t in ts if t["aggressor"] == "SELL"),
            "vwap": sum(t["price"] * t["size"] for t in ts) / volume,
        })
    return out


def _trades(market) -> list:
    return fetch(market.url, 'SELECT id, "timestamp", price, size, aggressor FROM tick_data WHERE symbol = $1', "ESZ6")


@pytest.mark.parametrize("interval, lo_offset, hi_offset", [
    ("1m", dt.timedelta(0), dt.timedelta(minutes=150)),
    ("5m", dt.timedelta(minutes=-3), dt.timedelta(minutes=147)),
    ("15m", dt.timedelta(0), dt.timedelta(minutes=150)),
    ("1h", dt.timedelta(hours=-1), dt.timedelta(hours=3)),
    ("1s", dt.timedelta(minutes=60), dt.timedelta(minutes=63)),
    ("1d", dt.timedelta(days=-2), dt.timedelta(days=1)),
])
def test_bars_equal_an_independent_computation(http, market, interval, lo_offset, hi_offset):
    lo, hi = market.start + lo_offset, market.start + hi_offset
    body = get_json(http, f"/api/bars/ESZ6?interval={interval}&start={iso(lo)}&end={iso(hi)}")
    expected = expected_bars(_trades(market), WIDTHS[interval], lo, hi)
    assert (body["symbol"], body["interval"], body["count"]) == ("ESZ6", interval, len(expected))
    assert expected
    for got, want in zip(body["data"], expected, strict=True):
        assert got["vwap"] == pytest.approx(want["vwap"], rel=1e-12)
        assert {k: v for k, v in got.items() if k != "vwap"} == {k: v for k, v in want.items() if k != "vwap"}
    assert schema_errors(response_schema("/api/bars/{symbol}", "get", 200), body) == []


def test_buckets_without_trades_are_left_out(http, market):
    lo, hi = market.start - dt.timedelta(minutes=10), market.start + dt.timedelta(minutes=5)
    body = get_json(http, f"/api/bars/ESZ6?interval=1m&start={iso(lo)}&end={iso(hi)}")
    starts = [dt.datetime.fromisoformat(b["timestamp"]) for b in body["data"]]
    assert starts and min(starts) >= market.start.replace(second=0)
    assert all(b["trades"] > 0 for b in body["data"])


def test_bars_default_to_recent_one_minute_buckets(http, market):
    body = get_json(http, "/api/bars/ESZ6")
    assert body["interval"] == "1m" and body["count"] > 100
    span = dt.datetime.fromisoformat(body["end"]) - dt.datetime.fromisoformat(body["start"])
    assert span == dt.timedelta(minutes=1000)


@pytest.mark.parametrize("query, title, fragment", [
    ("interval=2m", "Invalid interval", "1s, 1m, 5m, 15m, 1h, 1d"),
    ("interval=1h&start=2026-11-01T00:00:00Z&end=2026-11-09T00:00:00Z", "Range too long", "7 days"),
    ("interval=1d&start=2025-01-01T00:00:00Z&end=2026-11-01T00:00:00Z", "Range too long", "366 days"),
    ("interval=1s&start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z", "Range too long", "1s bars"),
    ("start=2026-11-02T00:00:00Z&end=2026-11-01T00:00:00Z", "Invalid range", "must be before end"),
    ("start=tomorrow", "Invalid time", "epoch"),
])
def test_bad_bar_requests_are_400(http, query, title, fragment):
    body = get_json(http, f"/api/bars/ESZ6?{query}", 400)
    assert body["error"] == title and fragment in body["message"]


def _levels(side: dict, reverse: bool) -> list[dict]:
    return [{"price": p, "size": s, "orders": o} for p, (s, o) in sorted(side.items(), reverse=reverse)]


def _instants(market) -> list[dt.datetime]:
    """Instants to look at: on groups (incl. the clear and the snapshot after it), between them, and now."""
    groups = market.groups
    clear = next(i for i, g in enumerate(groups) if g.rows[0]["update_type"] == "CLEAR_ORDER_BOOK")
    picks = [groups[0].ts, groups[1].ts, groups[clear].ts, groups[clear + 1].ts, groups[-1].ts]
    picks += [groups[i].ts + dt.timedelta(microseconds=1) for i in (3, 40, 120, clear + 5)]
    picks += [groups[i].ts for i in range(7, len(groups), 37)]
    return picks


def test_the_book_at_an_instant_equals_the_book_as_it_was_built(http, market):
    for at in _instants(market):
        body = get_json(http, f"/api/book/ESZ6?at={iso(at)}&depth=100")
        state = market.book_at(at)
        assert body["symbol"] == "ESZ6" and body["at"] == at.isoformat(timespec="microseconds")
        assert body["as_of"] == state.ts.isoformat(timespec="microseconds"), at
        assert body["bids"] == _levels(state.bids, reverse=True), at
        assert body["asks"] == _levels(state.asks, reverse=False), at
        assert schema_errors(response_schema("/api/book/{symbol}", "get", 200), body) == []


def test_the_top_of_the_book_equals_the_last_quote_at_or_before_the_instant(http, market):
    for at in _instants(market) + [default_clock().now_dt()]:
        book = get_json(http, f"/api/book/ESZ6?at={iso(at)}&depth=1")
        quotes = get_json(http, f"/api/quotes/ESZ6?end={iso(at + dt.timedelta(microseconds=1))}&limit=1")
        (last,) = quotes["data"]
        assert last["timestamp"] <= at.isoformat(timespec="microseconds")
        top_bid = book["bids"][0] if book["bids"] else {"price": None, "size": None, "orders": None}
        top_ask = book["asks"][0] if book["asks"] else {"price": None, "size": None, "orders": None}
        assert (top_bid["price"], top_bid["size"], top_bid["orders"]) == \
            (last["bid_price"], last["bid_size"], last["bid_orders"]), at
        assert (top_ask["price"], top_ask["size"], top_ask["orders"]) == \
            (last["ask_price"], last["ask_size"], last["ask_orders"]), at


def test_book_depth_defaults_to_ten_and_is_bounded(http, market):
    at = iso(market.groups[60].ts)
    full = get_json(http, f"/api/book/ESZ6?at={at}&depth=100")
    assert len(full["bids"]) > 10 or len(full["asks"]) > 10
    default = get_json(http, f"/api/book/ESZ6?at={at}")
    assert default["depth"] == 10 and default["bids"] == full["bids"][:10] and default["asks"] == full["asks"][:10]
    three = get_json(http, f"/api/book/ESZ6?at={at}&depth=3")
    assert three["bids"] == full["bids"][:3] and three["asks"] == full["asks"][:3]
    assert get_json(http, f"/api/book/ESZ6?at={at}&depth=100000")["depth"] == 100
    for depth in ("0", "-1", "ten"):
        assert get_json(http, f"/api/book/ESZ6?at={at}&depth={depth}", 400)["error"] == "Invalid depth"
    assert get_json(http, "/api/book/ESZ6?at=noon", 400)["error"] == "Invalid time"


def test_no_snapshot_before_the_instant_is_404_with_the_reason(http, market):
    before = market.groups[0].ts - dt.timedelta(microseconds=1)
    body = get_json(http, f"/api/book/ESZ6?at={iso(before)}", 404)
    assert body["error"] == "No order book" and "SNAPSHOT_IMAGE" in body["message"] and body["request_id"]
    assert get_json(http, "/api/book/CLF7", 404)["error"] == "No order book"


def test_quotes_are_the_stored_best_bid_and_offer(http, market):
    body = get_json(http, "/api/quotes/ESZ6?limit=1000&order=asc")
    assert body["count"] == market.counts["quotes"]
    for item, group in zip(body["data"], market.groups, strict=True):
        assert item["timestamp"] == group.ts.isoformat(timespec="microseconds")
        assert item["bid_price"] == (max(group.bids) if group.bids else None)
        assert item["ask_price"] == (min(group.asks) if group.asks else None)
        assert set(item) == {"timestamp", "symbol", "exchange", "bid_price", "bid_size", "bid_orders",
                             "ask_price", "ask_size", "ask_orders"}
