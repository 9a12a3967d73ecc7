"""Shared pieces of the API's integration tests (no tests here): the in-process client, market data
written through the collector's own writer, and a small OpenAPI schema checker.

Market-data rows always go through `collector_ecs.writer.write_batch`, laid out by
`collector_ecs.parsing`'s column tuples, exactly as the collector stores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import re
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import pytest
from chalice.test import Client

from collector_ecs.parsing import LEVEL2_COLUMNS, QUOTE_COLUMNS, TICK_COLUMNS
from collector_ecs.writer import write_batch
from rdc_common.clock import default_clock

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

import app as api_app  # noqa: E402
from chalicelib import db as api_db  # noqa: E402
from chalicelib.openapi import document  # noqa: E402

UTC = dt.UTC
COLUMNS = {"tick_data": TICK_COLUMNS, "quote_data": QUOTE_COLUMNS, "level2_data": LEVEL2_COLUMNS}
# Every variable the API reads; each test starts from none of them set.
API_ENV = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SSLMODE",
           "DATABASE_SECRET_ARN", "DB_STATEMENT_TIMEOUT_MS", "DB_CONNECT_TIMEOUT_S", "DB_POOL_MAX_SIZE",
           "REDIS_URL", "REDIS_AUTH_SECRET_ARN", "REDIS_TIMEOUT_S", "API_KEYS", "API_KEYS_SECRET_ARN",
           "REQUIRE_API_KEY_FOR_WRITES", "SECRET_MAX_AGE_S", "API_MAX_RANGE_DAYS", "API_MAX_DAILY_BARS_RANGE_DAYS",
           "API_MAX_BODY_BYTES", "ARCHIVE_URL", "ARCHIVE_DOWNLOAD_URL", "ARCHIVE_URL_EXPIRES_S")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_client(monkeypatch: pytest.MonkeyPatch, **env: str):
    """chalice.test.Client over the real app, configured from `env` alone; fresh pool and settings."""
    for name in API_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    api_db.reset_for_tests()
    try:
        with Client(api_app.app, project_dir=str(API_DIR)) as client:
            yield client.http
    finally:
        api_db.reset_for_tests()


def get_json(http, path: str, status: int = 200, **kwargs):
    response = http.get(path, **kwargs)
    assert response.status_code == status, (path, response.status_code, response.body[:500])
    assert response.headers.get("Content-Type") == "application/json"
    return response.json_body


# -- writing rows the collector's way ---------------------------------------------------

async def _write(url: str, table: str, batches: list[list[dict]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for rows in batches:
            tuples = [tuple(r[c] for c in COLUMNS[table]) for r in rows]
            assert await write_batch(conn, table, tuples, uuid.uuid4())
    finally:
        await conn.close()


def write_rows(url: str, table: str, *batches: list[dict]) -> None:
    asyncio.run(_write(url, table, [b for b in batches if b]))


async def _fetch(url: str, sql: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args) -> list:
    return asyncio.run(_fetch(url, sql, *args))


def execute(url: str, sql: str) -> None:
    async def go():
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def tick(ts: dt.datetime, symbol: str, price: float, size: int, aggressor: str | None, backfilled: bool = False,
         exchange: str = "CME", sub_us_ns: int | None = None, gateway_us: int | None = None) -> dict:
    """A trade row. `sub_us_ns` (0..999) gives it nanoseconds as a live trade has them and
    `gateway_us` the gateway's stamp that many microseconds later; left out, the row is one stored
    before nanoseconds were kept, or a backfilled one (the replay carries neither)."""
    epoch_ns = (ts - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1) * 1000
    return {"timestamp": ts, "symbol": symbol, "exchange": exchange, "price": price, "size": size,
            "aggressor": aggressor, "cumulative_volume": None, "received_at": ts + dt.timedelta(milliseconds=3),
            "backfilled": backfilled, "timestamp_ns": epoch_ns + sub_us_ns if sub_us_ns is not None else None,
            "gateway_at": ts + dt.timedelta(microseconds=gateway_us) if gateway_us is not None else None}


# -- the recorded market of the read-only tests -----------------------------------------

@dataclass
class Group:
    """One instant of the book: the OrderBook messages sent at `ts` and the book after them."""

    ts: dt.datetime
    rows: list[dict]
    bids: dict[float, tuple[int, int]]
    asks: dict[float, tuple[int, int]]


@dataclass
class Market:
    url: str
    start: dt.datetime  # first ESZ6 trade
    end: dt.datetime  # after the last ESZ6 trade
    run_ts: dt.datetime  # the instant shared by a run of trades
    run_length: int
    groups: list[Group] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def book_at(self, at: dt.datetime) -> Group | None:
        state = None
        for g in self.groups:
            if g.ts <= at:
                state = g
        return state


def _book_row(ts, kind, bids, asks, symbol="ESZ6", exchange="CME") -> dict:
    return {"timestamp": ts, "symbol": symbol, "exchange": exchange, "update_type": kind,
            "bid_price": [p for p, _, _ in bids], "bid_size": [s for _, s, _ in bids],
            "bid_orders": [o for _, _, o in bids], "ask_price": [p for p, _, _ in asks],
            "ask_size": [s for _, s, _ in asks], "ask_orders": [o for _, _, o in asks],
            "received_at": ts + dt.timedelta(milliseconds=2)}


def _quote(ts, bids, asks, symbol="ESZ6", exchange="CME") -> dict:
    bid = max(bids) if bids else None
    ask = min(asks) if asks else None
    return {"timestamp": ts, "symbol": symbol, "exchange": exchange,
            "bid_price": bid, "bid_size": bids[bid][0] if bid else None, "bid_orders": bids[bid][1] if bid else None,
            "ask_price": ask, "ask_size": asks[ask][0] if ask else None, "ask_orders": asks[ask][1] if ask else None,
            "received_at": ts + dt.timedelta(milliseconds=2)}


def build_market(url: str, now: dt.datetime) -> Market:
    rng = random.Random(20261124)
    start = (now - dt.timedelta(minutes=150)).replace(second=0, microsecond=0)
    end = start + dt.timedelta(minutes=145)
    # ESZ6 trades: live rows in time order, then a backfilled batch written later (higher ids, earlier
    # timestamps), and a run of trades sharing one timestamp split across both batches.
    live, backfill = [], []
    price = 6000.0
    span_us = int((end - start).total_seconds() * 1e6) - 1
    for us in sorted(rng.randrange(span_us) for _ in range(700)):
        price += rng.choice((-0.25, 0, 0.25))
        live.append(tick(start + dt.timedelta(microseconds=us), "ESZ6", price, rng.randint(1, 20),
                         rng.choice(("BUY", "SELL", "BUY", "SELL", None)),
                         # from `us`, not `rng`: the rest of the market draws from rng as it always did
                         sub_us_ns=us * 7919 % 1000, gateway_us=150 + us % 451))
    run_ts = start + dt.timedelta(minutes=61, seconds=7, microseconds=123456)
    run = [tick(run_ts, "ESZ6", 6100.0 + i * 0.25, i + 1, "BUY" if i % 2 else "SELL", sub_us_ns=10 + 80 * i,
                gateway_us=300 + i) for i in range(12)]
    live = sorted(live + run, key=lambda r: r["timestamp"])
    for us in sorted(rng.randrange(span_us) for _ in range(60)):
        backfill.append(tick(start + dt.timedelta(microseconds=us), "ESZ6", 5990.0 + rng.randint(0, 40) * 0.25,
                             rng.randint(1, 5), rng.choice(("BUY", "SELL")), backfilled=True))
    backfill += [tick(run_ts, "ESZ6", 6200.0 + i, 30 + i, "SELL", backfilled=True) for i in range(3)]
    # NQZ6: rows as stored before sql/005 (no nanoseconds, no gateway stamp)
    others = [tick(start + dt.timedelta(seconds=20 * i), "NQZ6", 21000.0 + i, 1, "BUY") for i in range(30)]
    stale = [tick(now - dt.timedelta(days=3, seconds=i), "ZNZ6", 111.0, 1, None, exchange="CBOT") for i in range(5)]
    write_rows(url, "tick_data", live[: len(live) // 2], live[len(live) // 2:], others, backfill, stale)

    # ESZ6 order book: a snapshot, groups of updates (BEGIN..END share an instant, SOLO alone), a clear
    # and a fresh snapshot; after every group the BBO the exchange would send.
    market = Market(url, start, end, run_ts, len(run) + 3,
                    counts={"ESZ6": len(live) + len(backfill), "NQZ6": len(others)})
    bids = {5999.75 - k * 0.25: (rng.randint(5, 60), rng.randint(1, 9)) for k in range(10)}
    asks = {6000.0 + k * 0.25: (rng.randint(5, 60), rng.randint(1, 9)) for k in range(10)}
    ts = start + dt.timedelta(minutes=5)
    level2, quotes = [], []

    def record(ts, rows):
        level2.extend(rows)
        quotes.append(_quote(ts, bids, asks))
        market.groups.append(Group(ts, rows, dict(bids), dict(asks)))

    def snapshot(ts):
        return _book_row(ts, "SNAPSHOT_IMAGE", sorted(((p, s, o) for p, (s, o) in bids.items()), reverse=True),
                         sorted((p, s, o) for p, (s, o) in asks.items()))

    record(ts, [snapshot(ts)])
    for i in range(240):
        ts += dt.timedelta(milliseconds=rng.randint(50, 4000))
        if i == 150:
            bids.clear()
            asks.clear()
            record(ts, [_book_row(ts, "CLEAR_ORDER_BOOK", [], [])])
            ts += dt.timedelta(milliseconds=40)
            bids.update({5995.0 - k * 0.25: (rng.randint(5, 60), rng.randint(1, 9)) for k in range(8)})
            asks.update({5995.25 + k * 0.25: (rng.randint(5, 60), rng.randint(1, 9)) for k in range(8)})
            record(ts, [snapshot(ts)])
            continue
        kinds = ["SOLO"] if rng.random() < 0.4 else ["BEGIN"] + ["MIDDLE"] * rng.randint(0, 2) + ["END"]
        rows = []
        for kind in kinds:
            changed_b, changed_a = [], []
            for _ in range(rng.randint(1, 3)):
                side = rng.choice("ba")
                book = bids if side == "b" else asks
                best_bid = max(bids) if bids else 5999.75
                best_ask = min(asks) if asks else best_bid + 0.25
                p = (best_bid - rng.randint(-1, 6) * 0.25) if side == "b" else (best_ask + rng.randint(-1, 6) * 0.25)
                if side == "b" and p >= best_ask or side == "a" and p <= best_bid:
                    continue  # never cross the book
                if p in book and rng.random() < 0.35:
                    del book[p]
                    level = (p, 0, 0)
                else:
                    book[p] = (rng.randint(1, 80), rng.randint(1, 9))
                    level = (p, *book[p])
                (changed_b if side == "b" else changed_a).append(level)
            rows.append(_book_row(ts, kind, changed_b, changed_a))
        record(ts, rows)
    gc = [_book_row(start + dt.timedelta(minutes=9, seconds=i), "SNAPSHOT_IMAGE", [(2650.0, 3, 1)],
                    [(2650.1, 4, 2)], symbol="GCZ6", exchange="COMEX") for i in range(4)]
    write_rows(url, "level2_data", level2[:300], level2[300:], gc)
    write_rows(url, "quote_data", quotes)
    market.counts["level2"] = len(level2) + len(gc)
    market.counts["quotes"] = len(quotes)
    return market


def recorded_market(pg, migrated_template):
    """A database holding the recorded market, for a module-scoped fixture of read-only tests."""
    url = pg.create_database(template=migrated_template)
    try:
        yield build_market(url, default_clock().now_dt())
    finally:
        pg.drop_database(url)


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


# -- OpenAPI conformance ----------------------------------------------------------------

_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def schema_errors(schema: dict, value, where: str = "$") -> list[str]:
    """Differences between `value` and an OpenAPI 3.0 schema (the subset /openapi.json uses)."""
    doc = document()
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null where {schema.get('type')} expected"]
    expected = _TYPES[schema["type"]]
    if isinstance(value, bool) and schema["type"] in ("integer", "number"):
        return [f"{where}: boolean where {schema['type']} expected"]
    if not isinstance(value, expected):
        return [f"{where}: {type(value).__name__} where {schema['type']} expected"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if schema["type"] == "string" and schema.get("format") == "date-time":
        try:
            parsed = dt.datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                errors.append(f"{where}: {value} has no offset")
        except ValueError:
            errors.append(f"{where}: {value!r} is not a date-time")
    if schema["type"] == "object":
        props = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(value)
        if missing:
            errors.append(f"{where}: missing {sorted(missing)}")
        undocumented = set(value) - set(props)
        if undocumented and props:
            errors.append(f"{where}: undocumented {sorted(undocumented)}")
        for key, sub in props.items():
            if key in value:
                errors += schema_errors(sub, value[key], f"{where}.{key}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key in set(value) - set(props):
                errors += schema_errors(schema["additionalProperties"], value[key], f"{where}.{key}")
    if schema["type"] == "string" and "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if schema["type"] == "array":
        for i, item in enumerate(value):
            errors += schema_errors(schema["items"], item, f"{where}[{i}]")
    return errors


def response_schema(path_template: str, method: str, status: int) -> dict:
    op = document()["paths"][path_template][method.lower()]
    return op["responses"][str(status)]["content"]["application/json"]["schema"]


def iso(value: dt.datetime) -> str:
    """A time as a URL query value."""
    return quote(value.isoformat(timespec="microseconds"))
