"""Time ranges, order and cursor paging of /api/ticks, /api/level2 and /api/quotes: every row exactly once."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest

from tests.integration.test_api_support import (
    api_client,
    fetch,
    get_json,
    iso,
    response_schema,
    schema_errors,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

TABLES = {"ticks": "tick_data", "level2": "level2_data", "quotes": "quote_data"}


def db_rows(market, route: str, symbol: str, order: str, start=None, end=None) -> list:
    """The rows a range holds, in (timestamp, id) order, straight from the table."""
    direction = "DESC" if order == "desc" else "ASC"
    sql = (f'SELECT id, "timestamp" FROM {TABLES[route]} WHERE symbol = $1 AND "timestamp" >= $2 '
           f'AND "timestamp" < $3 ORDER BY "timestamp" {direction}, id {direction}')
    lo = start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    hi = end or dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    return fetch(market.url, sql, symbol, lo, hi)


def walk(http, first_path: str) -> list[dict]:
    """Follow next_cursor to the end; every page's rows, in order, one list per page."""
    pages = []
    body = get_json(http, first_path)
    pages.append(body)
    while body["next_cursor"] is not None:
        assert body["count"] == body["limit"]  # only a full page has a successor
        base = first_path.split("?")[0]
        body = get_json(http, f"{base}?cursor={body['next_cursor']}&limit={body['limit']}")
        pages.append(body)
        assert len(pages) < 500, "paging does not end"
    return pages


def _key(route: str, item: dict) -> tuple:
    if route == "ticks":
        return (item["timestamp"], item["price"], item["volume"], item["direction"], item["backfilled"],
                item["timestamp_ns"], item["gateway_at"])
    if route == "quotes":
        return item["timestamp"], item["bid_price"], item["ask_price"], item["bid_size"], item["ask_size"]
    return item["timestamp"], item["update_type"], str(item["bids"]), str(item["asks"])


def _db_key(market, route: str, ids: list[int]) -> list[tuple]:
    """The same identifying fields as the API shows, for rows given by id, in that order."""
    rows = {r["id"]: r for r in fetch(market.url, f"SELECT * FROM {TABLES[route]} WHERE id = ANY($1::bigint[])", ids)}
    out = []
    for i in ids:
        r = rows[i]
        ts = r["timestamp"].isoformat(timespec="microseconds")
        if route == "ticks":
            ns = r["timestamp_ns"]
            if ns is None:  # stored without nanoseconds: the microseconds, in nanoseconds
                ns = (r["timestamp"] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000
            gateway = r["gateway_at"].isoformat(timespec="microseconds") if r["gateway_at"] else None
            out.append((ts, r["price"], r["size"], r["aggressor"], r["backfilled"], str(ns), gateway))
        elif route == "quotes":
            out.append((ts, r["bid_price"], r["ask_price"], r["bid_size"], r["ask_size"]))
        else:
            bids = [{"price": p, "size": s, "orders": o}
                    for p, s, o in zip(r["bid_price"], r["bid_size"], r["bid_orders"], strict=True)]
            asks = [{"price": p, "size": s, "orders": o}
                    for p, s, o in zip(r["ask_price"], r["ask_size"], r["ask_orders"], strict=True)]
            out.append((ts, r["update_type"], str(bids), str(asks)))
    return out


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_through_every_trade_skips_and_repeats_nothing(http, market, order):
    pages = walk(http, f"/api/ticks/ESZ6?order={order}&limit=7")
    got = [_key("ticks", item) for page in pages for item in page["data"]]
    expected_ids = [r["id"] for r in db_rows(market, "ticks", "ESZ6", order)]
    assert len(got) == len(expected_ids) == market.counts["ESZ6"]
    assert got == _db_key(market, "ticks", expected_ids)
    assert pages[-1]["next_cursor"] is None


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_page_boundary_inside_a_run_of_equal_timestamps(http, market, order):
    """15 trades share one instant (12 live, 3 backfilled later); pages of 4 must cut through them."""
    run = iso(market.run_ts)
    after = iso(market.run_ts + dt.timedelta(microseconds=1))
    pages = walk(http, f"/api/ticks/ESZ6?order={order}&limit=4&start={run}&end={after}")
    expected_ids = [r["id"] for r in db_rows(market, "ticks", "ESZ6", order, market.run_ts,
                                             market.run_ts + dt.timedelta(microseconds=1))]
    assert len(expected_ids) == market.run_length == 15
    got = [_key("ticks", item) for page in pages for item in page["data"]]
    assert got == _db_key(market, "ticks", expected_ids)
    assert [p["count"] for p in pages] == [4, 4, 4, 3]
    assert {item["timestamp"] for page in pages for item in page["data"]} == {
        market.run_ts.isoformat(timespec="microseconds")}


def test_paging_over_a_range_that_cuts_a_run_of_equal_timestamps(http, market):
    """A window around the run, pages of 5: boundaries land inside the run and nothing is lost."""
    start, end = market.run_ts - dt.timedelta(seconds=30), market.run_ts + dt.timedelta(seconds=30)
    pages = walk(http, f"/api/ticks/ESZ6?order=asc&limit=5&start={iso(start)}&end={iso(end)}")
    items = [item for page in pages for item in page["data"]]
    expected_ids = [r["id"] for r in db_rows(market, "ticks", "ESZ6", "asc", start, end)]
    assert [_key("ticks", i) for i in items] == _db_key(market, "ticks", expected_ids)
    run = market.run_ts.isoformat(timespec="microseconds")
    cut_inside = any(a["data"][-1]["timestamp"] == run == b["data"][0]["timestamp"]
                     for a, b in zip(pages, pages[1:], strict=False))
    assert cut_inside


@pytest.mark.parametrize("route", ["level2", "quotes"])
def test_level2_and_quotes_page_the_same_way(http, market, route):
    pages = walk(http, f"/api/{route}/ESZ6?order=asc&limit=45")
    got = [_key(route, item) for page in pages for item in page["data"]]
    expected_ids = [r["id"] for r in db_rows(market, route, "ESZ6", "asc")]
    assert got == _db_key(market, route, expected_ids)
    assert len(pages) > 3
    schema = {"level2": "/api/level2/{symbol}", "quotes": "/api/quotes/{symbol}"}[route]
    assert schema_errors(response_schema(schema, "get", 200), pages[0]) == []


def test_start_is_inclusive_and_end_exclusive_in_every_time_format(http, market):
    rows = db_rows(market, "ticks", "ESZ6", "asc")
    first, last = rows[100]["timestamp"], rows[200]["timestamp"]
    expected = [r["id"] for r in db_rows(market, "ticks", "ESZ6", "asc", first, last)]
    assert expected[0] == rows[100]["id"]  # the row at start is in
    forms = [
        (iso(first), iso(last)),
        (quote(first.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()),
         quote(last.astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat())),
        (first.isoformat().replace("+00:00", "Z"), last.isoformat().replace("+00:00", "Z")),
    ]
    for start, end in forms:
        body = get_json(http, f"/api/ticks/ESZ6?order=asc&limit=1000&start={start}&end={end}")
        assert [_key("ticks", i) for i in body["data"]] == _db_key(market, "ticks", expected), (start, end)
        assert body["data"][-1]["timestamp"] < last.isoformat(timespec="microseconds")
    # epoch seconds and milliseconds: whole-second bounds
    lo = first.replace(microsecond=0) + dt.timedelta(seconds=1)
    hi = last.replace(microsecond=0)
    expected = [r["id"] for r in db_rows(market, "ticks", "ESZ6", "asc", lo, hi)]
    for start, end in ((int(lo.timestamp()), int(hi.timestamp())),
                       (int(lo.timestamp()) * 1000, int(hi.timestamp()) * 1000)):
        body = get_json(http, f"/api/ticks/ESZ6?order=asc&limit=1000&start={start}&end={end}")
        assert [_key("ticks", i) for i in body["data"]] == _db_key(market, "ticks", expected)


def test_default_order_is_newest_first_within_a_range(http, market):
    start, end = market.start, market.start + dt.timedelta(minutes=30)
    body = get_json(http, f"/api/ticks/ESZ6?start={iso(start)}&end={iso(end)}&limit=20")
    expected = [r["id"] for r in db_rows(market, "ticks", "ESZ6", "desc", start, end)][:20]
    assert [_key("ticks", i) for i in body["data"]] == _db_key(market, "ticks", expected)
    assert body["order"] == "desc" and body["next_cursor"] is not None


def test_the_cursor_carries_the_query(http, market):
    start, end = market.start, market.start + dt.timedelta(minutes=30)
    first = get_json(http, f"/api/ticks/ESZ6?order=asc&start={iso(start)}&end={iso(end)}&limit=10")
    cursor = first["next_cursor"]
    # the same range may be repeated; a different one is refused
    same = get_json(http, f"/api/ticks/ESZ6?cursor={cursor}&order=asc&start={iso(start)}&end={iso(end)}&limit=10")
    alone = get_json(http, f"/api/ticks/ESZ6?cursor={cursor}&limit=10")
    assert same["data"] == alone["data"] and same["data"][0] != first["data"][0]
    for extra in ("order=desc", f"start={iso(start + dt.timedelta(seconds=1))}"):
        body = get_json(http, f"/api/ticks/ESZ6?cursor={cursor}&{extra}", 400)
        assert body["error"] == "Invalid cursor"
    body = get_json(http, f"/api/level2/ESZ6?cursor={cursor}", 400)
    assert "continues ticks of ESZ6" in body["message"]
    body = get_json(http, f"/api/ticks/NQZ6?cursor={cursor}", 400)
    assert body["error"] == "Invalid cursor"


@pytest.mark.parametrize("query, title, fragment", [
    ("start=yesterday", "Invalid time", "UTC offset"),
    ("end=2026-11-24T14:30:00", "Invalid time", "has no UTC offset"),
    ("start=2026-11-24T00:00:00Z&end=2026-11-24T00:00:00Z", "Invalid range", "must be before end"),
    ("start=2026-11-25T00:00:00Z&end=2026-11-24T00:00:00Z", "Invalid range", "must be before end"),
    ("start=2026-11-01T00:00:00Z&end=2026-11-09T00:00:00Z", "Range too long", "more than 7 days"),
    ("order=newest", "Invalid order", "asc (oldest first) or desc"),
    ("cursor=garbage", "Invalid cursor", "next_cursor"),
    ("cursor=", "Invalid cursor", "next_cursor"),
])
@pytest.mark.parametrize("route", ["ticks", "level2", "quotes"])
def test_malformed_ranges_orders_and_cursors_are_400(http, route, query, title, fragment):
    body = get_json(http, f"/api/{route}/ESZ6?{query}", 400)
    assert body["error"] == title and fragment in body["message"]
    assert schema_errors(response_schema("/api/ticks/{symbol}", "get", 400), body) == []


def test_the_maximum_range_is_configurable(market, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=market.url, REDIS_URL=redis_url, API_MAX_RANGE_DAYS="1") as http:
        body = get_json(http, "/api/ticks/ESZ6?start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z", 400)
        assert "more than 1 day" in body["message"]
        get_json(http, "/api/ticks/ESZ6?start=2026-11-01T00:00:00Z&end=2026-11-02T00:00:00Z")
