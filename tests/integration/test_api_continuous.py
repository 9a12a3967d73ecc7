"""Continuous symbols (ES.c.0) across the ES roll of 2026-12-09 17:00 Chicago (23:00 UTC), and /api/rolls.

The data is written the collector's way (collector_ecs.writer) for both contracts on both sides of the
roll, as a collector following ES records it (ESZ6 until its expiry, ESH7 from the roll) plus rows a
user recorded explicitly (ESH7 before the roll, ESM7). The expectations use the roll instant as a
literal, not the code under test: ESZ6 serves every instant before 23:00:00Z, ESH7 every one from it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from tests.integration.test_api_support import (
    API_DIR,
    _book_row,
    _quote,
    api_client,
    fetch,
    get_json,
    iso,
    response_schema,
    schema_errors,
    tick,
    write_rows,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

UTC = dt.UTC
ROLL = dt.datetime(2026, 12, 9, 23, 0, tzinfo=UTC)  # the open of ES's 2026-12-10 session
US = dt.timedelta(microseconds=1)


def front(ts: dt.datetime) -> str:
    return "ESZ6" if ts < ROLL else "ESH7"


def second_month(ts: dt.datetime) -> str:
    return "ESH7" if ts < ROLL else "ESM7"


class Data:
    def __init__(self, url: str):
        self.url = url
        self.ticks: list[dict] = []  # every trade written, each with a unique size
        self.book_at: dict[str, list[tuple]] = {}


def _trades(rng: random.Random, data: Data) -> list[list[dict]]:
    """Batches of trades; each trade has a unique size, so (symbol, volume) names one row."""
    size = iter(range(1, 10**6))
    base = {"ESZ6": 6000.0, "ESH7": 6060.0, "ESM7": 6120.0, "NQZ6": 21000.0}

    def t(ts, symbol, aggressor=None):
        row = tick(ts, symbol, base[symbol] + rng.randint(-8, 8) * 0.25, next(size),
                   aggressor or rng.choice(("BUY", "SELL")))
        data.ticks.append(row)
        return row

    window = [ROLL - dt.timedelta(minutes=30) + dt.timedelta(microseconds=rng.randrange(3600 * 10**6))
              for _ in range(240)]
    # Written ESH7 first: ids do not follow time across contracts.
    batches = [
        [t(ts, "ESH7") for ts in sorted(window[:120])],
        [t(ts, "ESZ6") for ts in sorted(window[120:])],
        # Equal timestamps at the boundary: both contracts at the roll instant and a microsecond before.
        [t(ROLL, "ESH7") for _ in range(5)] + [t(ROLL, "ESZ6") for _ in range(3)],
        [t(ROLL - US, "ESZ6") for _ in range(4)] + [t(ROLL - US, "ESH7") for _ in range(2)],
        [t(ROLL + US, "ESZ6") for _ in range(2)] + [t(ROLL + US, "ESH7") for _ in range(3)],
        # Farther away: ESZ6 in late November, ESH7 days after the roll, the next contract, another product.
        [t(dt.datetime(2026, 12, 1, 15, tzinfo=UTC) + dt.timedelta(seconds=i), "ESZ6") for i in range(6)],
        [t(dt.datetime(2026, 12, 14, 15, tzinfo=UTC) + dt.timedelta(seconds=i), "ESH7") for i in range(6)],
        [t(ROLL + dt.timedelta(seconds=30 * i - 600), "ESM7") for i in range(40)],
        [t(ROLL + dt.timedelta(seconds=i - 60), "NQZ6") for i in range(120)],
    ]
    return batches


def _books(data: Data) -> tuple[list[dict], list[dict]]:
    """A snapshot and a few updates per contract, before and after the roll, and each book's BBO."""
    level2, quotes = [], []

    def record(ts, symbol, kind, bids, asks, book_bids, book_asks):
        level2.append(_book_row(ts, kind, bids, asks, symbol=symbol))
        quotes.append(_quote(ts, book_bids, book_asks, symbol=symbol))

    z_bids = {5999.75: (40, 7), 5999.5: (55, 9)}
    z_asks = {6000.0: (35, 6), 6000.25: (60, 11)}
    record(ROLL - dt.timedelta(minutes=20), "ESZ6", "SNAPSHOT_IMAGE", [(5999.75, 40, 7), (5999.5, 55, 9)],
           [(6000.0, 35, 6), (6000.25, 60, 11)], z_bids, z_asks)
    z_bids[5999.75] = (12, 3)
    record(ROLL - dt.timedelta(minutes=5), "ESZ6", "SOLO", [(5999.75, 12, 3)], [], z_bids, z_asks)
    z_asks[6000.0] = (80, 14)
    record(ROLL + dt.timedelta(minutes=3), "ESZ6", "SOLO", [], [(6000.0, 80, 14)], z_bids, z_asks)

    h_bids = {6059.75: (22, 4)}
    h_asks = {6060.0: (18, 5)}
    record(ROLL - dt.timedelta(minutes=15), "ESH7", "SNAPSHOT_IMAGE", [(6059.75, 22, 4)], [(6060.0, 18, 5)],
           h_bids, h_asks)
    h_bids[6059.5] = (30, 6)
    record(ROLL + dt.timedelta(seconds=30), "ESH7", "SOLO", [(6059.5, 30, 6)], [], h_bids, h_asks)
    data.book_at = {
        "ESZ6 before": ([{"price": 5999.75, "size": 12, "orders": 3}, {"price": 5999.5, "size": 55, "orders": 9}],
                        [{"price": 6000.0, "size": 35, "orders": 6}, {"price": 6000.25, "size": 60, "orders": 11}]),
        "ESH7 after": ([{"price": 6059.75, "size": 22, "orders": 4}, {"price": 6059.5, "size": 30, "orders": 6}],
                       [{"price": 6060.0, "size": 18, "orders": 5}]),
    }
    return level2, quotes


@pytest.fixture(scope="module")
def data(pg, migrated_template):
    url = pg.create_database(template=migrated_template)
    try:
        d = Data(url)
        rng = random.Random(20261209)
        write_rows(url, "tick_data", *_trades(rng, d))
        level2, quotes = _books(d)
        write_rows(url, "level2_data", level2[:3], level2[3:])
        write_rows(url, "quote_data", quotes)
        yield d
    finally:
        pg.drop_database(url)


@pytest.fixture
def http(data, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=data.url, REDIS_URL=redis_url) as http:
        yield http


def walk(http, path: str, limit: int) -> list[dict]:
    """Every row of a paged request, following next_cursor to the end."""
    sep = "&" if "?" in path else "?"
    body = get_json(http, f"{path}{sep}limit={limit}")
    out = list(body["data"])
    while body["next_cursor"] is not None:
        assert body["count"] == limit and body["symbol"] == "ES.c.0"
        body = get_json(http, f"{path.split('?')[0]}?cursor={body['next_cursor']}&limit={limit}")
        out += body["data"]
        assert len(out) < 10_000, "paging does not end"
    return out


def expected_ticks(data: Data, order: str, serves=front, lo=None, hi=None) -> list[tuple]:
    """(symbol, volume) of the rows ES.c.0 serves, in (timestamp, id) order: ids follow the write order."""
    rows = fetch(data.url, 'SELECT id, "timestamp", symbol, size FROM tick_data ORDER BY "timestamp", id')
    keep = [(r["symbol"], r["size"]) for r in rows if r["symbol"] == serves(r["timestamp"])
            and (lo is None or r["timestamp"] >= lo) and (hi is None or r["timestamp"] < hi)]
    return keep[::-1] if order == "desc" else keep


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
def test_ticks_page_across_the_roll_exactly(http, data, order, limit):
    window = f"start={iso(ROLL - dt.timedelta(hours=1))}&end={iso(ROLL + dt.timedelta(hours=1))}"
    got = walk(http, f"/api/ticks/ES.c.0?order={order}&{window}", limit)
    want = expected_ticks(data, order, lo=ROLL - dt.timedelta(hours=1), hi=ROLL + dt.timedelta(hours=1))
    assert [(r["symbol"], r["volume"]) for r in got] == want
    assert len(set(want)) == len(want) and len(want) > 100
    for r in got:
        assert r["symbol"] == front(dt.datetime.fromisoformat(r["timestamp"]))
    # The boundary itself: ESZ6 a microsecond before, only ESH7 at and after the roll instant.
    at_roll = [r["symbol"] for r in got if dt.datetime.fromisoformat(r["timestamp"]) == ROLL]
    assert at_roll == ["ESH7"] * 5
    just_before = [r["symbol"] for r in got if dt.datetime.fromisoformat(r["timestamp"]) == ROLL - US]
    assert just_before == ["ESZ6"] * 4


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_ticks_without_a_range_cover_every_recorded_front_month_row(http, data, order):
    got = walk(http, f"/api/ticks/es.c.0?order={order}", 50)
    assert [(r["symbol"], r["volume"]) for r in got] == expected_ticks(data, order)
    assert {r["symbol"] for r in got} == {"ESZ6", "ESH7"}  # never ESM7 nor NQZ6


def test_the_next_contract_is_rank_one(http, data):
    got = walk(http, "/api/ticks/ES.c.1?order=asc", 100)
    assert [(r["symbol"], r["volume"]) for r in got] == expected_ticks(data, "asc", serves=second_month)
    assert {r["symbol"] for r in got} == {"ESH7", "ESM7"}


def test_a_continuous_cursor_continues_only_its_own_symbol(http, data):
    first = get_json(http, "/api/ticks/ES.c.0?order=asc&limit=5")
    assert first["symbol"] == "ES.c.0"
    assert schema_errors(response_schema("/api/ticks/{symbol}", "get", 200), first) == []
    for other in ("ESZ6", "ES.c.1", "NQ.c.0"):
        body = get_json(http, f"/api/ticks/{other}?cursor={first['next_cursor']}", status=400)
        assert body["error"] == "Invalid cursor" and "ES.c.0" in body["message"]
    get_json(http, f"/api/quotes/ES.c.0?cursor={first['next_cursor']}", status=400)


@pytest.mark.parametrize("route", ["quotes", "level2"])
def test_quotes_and_book_messages_switch_contract_at_the_roll(http, data, route):
    window = f"start={iso(ROLL - dt.timedelta(hours=1))}&end={iso(ROLL + dt.timedelta(hours=1))}"
    for order in ("asc", "desc"):
        got = walk(http, f"/api/{route}/ES.c.0?order={order}&{window}", 1)
        seen = [(r["timestamp"], r["symbol"]) for r in got]
        times = [ROLL - dt.timedelta(minutes=20), ROLL - dt.timedelta(minutes=5), ROLL + dt.timedelta(seconds=30)]
        want = [(t.isoformat(timespec="microseconds"), front(t)) for t in times]
        assert seen == (want if order == "asc" else want[::-1])
        body = get_json(http, f"/api/{route}/ES.c.0?order={order}&{window}")
        assert schema_errors(response_schema(f"/api/{route}/{{symbol}}", "get", 200), body) == []


def _oracle_bars(data: Data, width: dt.timedelta, lo: dt.datetime, hi: dt.datetime) -> list[dict]:
    rows = fetch(data.url, 'SELECT id, "timestamp", symbol, price, size, aggressor FROM tick_data '
                           'ORDER BY "timestamp", id')
    epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
    buckets: dict[dt.datetime, list] = {}
    for r in rows:
        if lo <= r["timestamp"] < hi and r["symbol"] == front(r["timestamp"]):
            buckets.setdefault(epoch + (r["timestamp"] - epoch) // width * width, []).append(r)
    out = []
    for bucket, trades in sorted(buckets.items()):
        out.append({"timestamp": bucket.isoformat(timespec="microseconds"), "open": trades[0]["price"],
                    "high": max(t["price"] for t in trades), "low": min(t["price"] for t in trades),
                    "close": trades[-1]["price"], "volume": sum(t["size"] for t in trades), "trades": len(trades),
                    "symbols": sorted({t["symbol"] for t in trades})})
    return out


def test_one_minute_bars_are_esz6_before_the_roll_and_esh7_after(http, data):
    lo, hi = ROLL - dt.timedelta(minutes=10), ROLL + dt.timedelta(minutes=10)
    body = get_json(http, f"/api/bars/ES.c.0?interval=1m&start={iso(lo)}&end={iso(hi)}")
    assert schema_errors(response_schema("/api/bars/{symbol}", "get", 200), body) == []
    assert body["symbol"] == "ES.c.0"
    def t(value):
        return value.isoformat(timespec="microseconds")

    assert body["contracts"] == [{"symbol": "ESZ6", "start": t(lo), "end": t(ROLL)},
                                 {"symbol": "ESH7", "start": t(ROLL), "end": t(hi)}]
    want = _oracle_bars(data, dt.timedelta(minutes=1), lo, hi)
    assert len(want) >= 15  # minutes without a trade have no bar
    for bar, w in zip(body["data"], want, strict=True):
        assert {k: bar[k] for k in ("timestamp", "open", "high", "low", "close", "volume", "trades")} == \
            {k: w[k] for k in ("timestamp", "open", "high", "low", "close", "volume", "trades")}
        starts = dt.datetime.fromisoformat(bar["timestamp"])
        assert w["symbols"] == (["ESZ6"] if starts < ROLL else ["ESH7"])
        # ESZ6 trades near 6000, ESH7 near 6060: the prices say which contract a bar came from.
        assert (bar["high"] < 6030) == (starts < ROLL)
    # The same bars straight from the contracts: before the roll ESZ6's, from it ESH7's.
    z = get_json(http, f"/api/bars/ESZ6?interval=1m&start={iso(lo)}&end={iso(ROLL)}")["data"]
    h = get_json(http, f"/api/bars/ESH7?interval=1m&start={iso(ROLL)}&end={iso(hi)}")["data"]
    assert body["data"] == z + h


def test_a_daily_bar_spanning_the_roll_opens_on_the_old_contract_and_closes_on_the_new(http, data):
    day = dt.datetime(2026, 12, 9, tzinfo=UTC)
    body = get_json(http, f"/api/bars/ES.c.0?interval=1d&start={iso(day)}&end={iso(day + dt.timedelta(days=1))}")
    (bar,) = body["data"]
    (want,) = _oracle_bars(data, dt.timedelta(days=1), day, day + dt.timedelta(days=1))
    assert want["symbols"] == ["ESH7", "ESZ6"]
    assert {k: bar[k] for k in ("open", "high", "low", "close", "volume", "trades")} == \
        {k: want[k] for k in ("open", "high", "low", "close", "volume", "trades")}
    assert bar["open"] < 6030 < bar["close"]
    assert [c["symbol"] for c in body["contracts"]] == ["ESZ6", "ESH7"]


def test_the_book_is_the_front_contracts_at_each_instant(http, data):
    before = get_json(http, f"/api/book/ES.c.0?at={iso(ROLL - dt.timedelta(minutes=1))}")
    assert schema_errors(response_schema("/api/book/{symbol}", "get", 200), before) == []
    assert (before["symbol"], before["contract"]) == ("ES.c.0", "ESZ6")
    assert (before["bids"], before["asks"]) == data.book_at["ESZ6 before"]
    # At the roll instant the front month is ESH7 (its book: the snapshot it had before the roll).
    at_roll = get_json(http, f"/api/book/ES.c.0?at={iso(ROLL)}")
    assert at_roll["contract"] == "ESH7" and at_roll["snapshot_at"] == \
        (ROLL - dt.timedelta(minutes=15)).isoformat(timespec="microseconds")
    after = get_json(http, f"/api/book/ES.c.0?at={iso(ROLL + dt.timedelta(minutes=5))}")
    assert after["contract"] == "ESH7"
    assert (after["bids"], after["asks"]) == data.book_at["ESH7 after"]
    # ESZ6 itself still has its own book after the roll; the contract symbol is served as before.
    esz6 = get_json(http, f"/api/book/ESZ6?at={iso(ROLL + dt.timedelta(minutes=5))}")
    assert esz6["contract"] == "ESZ6" and esz6["asks"][0] == {"price": 6000.0, "size": 80, "orders": 14}
    # Before any message of the product: no book, and the message names the symbol asked for.
    missing = get_json(http, f"/api/book/ES.c.0?at={iso(ROLL - dt.timedelta(days=30))}", status=404)
    assert "ES.c.0" in missing["message"]


def test_gaps_follow_the_front_contract(http, data):
    fetch(data.url, "INSERT INTO gaps (symbol, exchange, gap_start, gap_end, cause) VALUES "
                    "('ESZ6', 'CME', $1, $2, 'stall'), ('ESZ6', 'CME', $3, $4, 'disconnect'), "
                    "('ESH7', 'CME', $5, $6, 'restart') RETURNING 1",
          ROLL - dt.timedelta(minutes=40), ROLL - dt.timedelta(minutes=39),
          ROLL + dt.timedelta(minutes=10), ROLL + dt.timedelta(minutes=11),
          ROLL + dt.timedelta(minutes=20), ROLL + dt.timedelta(minutes=21))
    try:
        body = get_json(http, f"/api/gaps/ES.c.0?start={iso(ROLL - dt.timedelta(hours=1))}"
                              f"&end={iso(ROLL + dt.timedelta(hours=1))}")
        assert schema_errors(response_schema("/api/gaps/{symbol}", "get", 200), body) == []
        assert [(g["symbol"], g["cause"]) for g in body["data"]] == [("ESZ6", "stall"), ("ESH7", "restart")]
    finally:
        fetch(data.url, "DELETE FROM gaps RETURNING 1")


def test_bad_continuous_symbols_say_what_is_accepted(http):
    body = get_json(http, "/api/ticks/XX.c.0", status=400)
    assert body["error"] == "Invalid symbol" and "ES" in body["message"]
    body = get_json(http, "/api/bars/ES.x.0", status=400)
    assert "ES.c.0" in body["message"]


def test_rolls_lists_the_recorded_rolls_and_the_next_scheduled_one(http, data):
    fetch(data.url, "INSERT INTO rolls (product, exchange, from_symbol, to_symbol, at) VALUES "
                    "('ES', 'CME', NULL, 'ESZ6', $1), ('ES', 'CME', 'ESZ6', 'ESH7', $2), "
                    "('NQ', 'CME', 'NQZ6', 'NQH7', $2) RETURNING 1",
          dt.datetime(2026, 11, 20, 15, tzinfo=UTC), ROLL)
    try:
        body = get_json(http, "/api/rolls/es")
        assert schema_errors(response_schema("/api/rolls/{product}", "get", 200), body) == []
        assert (body["product"], body["exchange"], body["count"]) == ("ES", "CME", 2)
        assert [(r["from"], r["to"], r["at"]) for r in body["rolls"]] == [
            (None, "ESZ6", "2026-11-20T15:00:00.000000+00:00"), ("ESZ6", "ESH7", "2026-12-09T23:00:00.000000+00:00")]
        # The suite's clock is 2026-11-24: ESZ6 is front and rolls to ESH7 at the open of 2026-12-10's session.
        assert body["front_month"] == "ESZ6"
        assert body["next_roll"] == {"status": "scheduled", "from": "ESZ6", "to": "ESH7",
                                     "at": "2026-12-09T23:00:00.000000+00:00"}
    finally:
        fetch(data.url, "DELETE FROM rolls RETURNING 1")
    empty = get_json(http, "/api/rolls/GC")
    assert (empty["count"], empty["rolls"], empty["exchange"]) == (0, [], "COMEX")
    body = get_json(http, "/api/rolls/XYZ", status=400)
    assert body["error"] == "Unknown product" and "ES" in body["message"]
    assert get_json(http, "/api/rolls/ESZ6", status=400)["error"] == "Unknown product"


def test_serving_either_kind_of_symbol_never_imports_pandas(data, redis_url):
    """The Lambda's cold start: pandas is not even in its package, and the API must not need it."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(API_DIR)!r})
        from chalice.test import Client
        import app
        out = {{}}
        with Client(app.app, project_dir={str(API_DIR)!r}) as client:
            for symbol in ("ESZ6", "ES.c.0"):
                r = client.http.get(f"/api/ticks/{{symbol}}?limit=3")
                out[symbol] = [r.status_code, json.loads(r.body)["count"], "pandas" in sys.modules]
        print(json.dumps(out))
    """)
    env = {**os.environ, "DATABASE_URL": data.url, "REDIS_URL": redis_url}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"ESZ6": [200, 3, False], "ES.c.0": [200, 3, False]}
