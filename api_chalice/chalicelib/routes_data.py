"""Recorded market data: trades, quotes and order-book messages (paged), bars, and the book at an instant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest

import asyncpg
from chalice import Blueprint

from rdc_common.book import BookRow, replay

from . import context, params, queries
from .config import get_settings
from .db import get_db
from .errors import NotFound
from .middleware import api_view
from .observability import MetricUnit, metrics

bp = Blueprint(__name__)

UTC = dt.UTC
NEG_INF = dt.datetime.min.replace(tzinfo=UTC)  # sent to PostgreSQL as -infinity
POS_INF = dt.datetime.max.replace(tzinfo=UTC)  # and infinity
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_US = dt.timedelta(microseconds=1)


def _query() -> dict[str, str]:
    q = context.current_request().query_params
    return dict(q) if q else {}


def _ts(value: dt.datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _levels(prices, sizes, orders) -> list[dict]:
    return [{"price": p, "size": s, "orders": o}
            for p, s, o in zip_longest(prices or (), sizes or (), orders or ()) if p is not None]


def tick_json(r: asyncpg.Record) -> dict:
    """A trade as the contract shows it, plus its nanoseconds and the gateway's stamp.

    `timestamp_ns` is a decimal string (epoch nanoseconds exceed the 2**53 a JavaScript number
    holds exactly); for a row that carries no nanoseconds it is `timestamp`'s microseconds x 1000.
    """
    ts, ns, gateway = r["timestamp"], r["timestamp_ns"], r["gateway_at"]
    return {"timestamp": _ts(ts), "symbol": r["symbol"], "price": r["price"], "volume": r["size"],
            "direction": r["aggressor"], "trade_type": "trade", "exchange": r["exchange"],
            "backfilled": r["backfilled"],
            "timestamp_ns": str(ns) if ns is not None else str((ts - _EPOCH) // _US * 1000),
            "gateway_at": _ts(gateway) if gateway is not None else None}


def quote_json(r: asyncpg.Record) -> dict:
    return {"timestamp": _ts(r["timestamp"]), "symbol": r["symbol"], "exchange": r["exchange"],
            "bid_price": r["bid_price"], "bid_size": r["bid_size"], "bid_orders": r["bid_orders"],
            "ask_price": r["ask_price"], "ask_size": r["ask_size"], "ask_orders": r["ask_orders"]}


def level2_json(r: asyncpg.Record) -> dict:
    bids = _levels(r["bid_price"], r["bid_size"], r["bid_orders"])
    asks = _levels(r["ask_price"], r["ask_size"], r["ask_orders"])
    return {"timestamp": _ts(r["timestamp"]), "symbol": r["symbol"], "exchange": r["exchange"],
            "update_type": r["update_type"], "bids": bids, "asks": asks, "depth": max(len(bids), len(asks))}


@dataclass(frozen=True)
class RowKind:
    name: str
    default_limit: int
    max_limit: int
    desc_sql: str
    asc_sql: str
    to_json: Callable[[asyncpg.Record], dict]


TICKS = RowKind("ticks", 100, 1000, queries.TICKS_DESC, queries.TICKS_ASC, tick_json)
LEVEL2 = RowKind("level2", 50, 500, queries.LEVEL2_DESC, queries.LEVEL2_ASC, level2_json)
QUOTES = RowKind("quotes", 100, 1000, queries.QUOTES_DESC, queries.QUOTES_ASC, quote_json)


def page(kind: RowKind, raw_symbol: str) -> dict:
    """One page of rows in (timestamp, id) order, with the cursor that continues after its last row."""
    settings = get_settings()
    symbol = params.parse_symbol(raw_symbol)
    req = params.page_request(_query(), kind=kind.name, symbol=symbol, default_limit=kind.default_limit,
                              max_limit=kind.max_limit, max_range=settings.max_range)
    desc = req.order == "desc"
    after_ts, after_id = req.after or ((POS_INF, 0) if desc else (NEG_INF, 0))
    # One row more than asked tells whether another page exists.
    rows = get_db().fetch(kind.desc_sql if desc else kind.asc_sql, symbol, req.start or NEG_INF,
                          req.end or POS_INF, after_ts, after_id, req.limit + 1)
    more = len(rows) > req.limit
    rows = rows[: req.limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = params.encode_cursor(params.Cursor(kind.name, symbol, req.order, last["timestamp"],
                                                         last["id"], req.start, req.end))
    to_json = kind.to_json
    data = [to_json(r) for r in rows]
    metrics.add_metric(name="RowsServed", unit=MetricUnit.Count, value=len(data))
    return {"symbol": symbol, "count": len(data), "limit": req.limit, "data": data, "next_cursor": next_cursor,
            "order": req.order, "start": params.iso(req.start) if req.start else None,
            "end": params.iso(req.end) if req.end else None}


@bp.route("/api/ticks/{symbol}", methods=["GET"])
@api_view
def get_ticks(symbol):
    return page(TICKS, symbol)


@bp.route("/api/level2/{symbol}", methods=["GET"])
@api_view
def get_level2(symbol):
    return page(LEVEL2, symbol)


@bp.route("/api/quotes/{symbol}", methods=["GET"])
@api_view
def get_quotes(symbol):
    return page(QUOTES, symbol)


@bp.route("/api/bars/{symbol}", methods=["GET"])
@api_view
def get_bars(symbol):
    settings = get_settings()
    symbol = params.parse_symbol(symbol)
    q = _query()
    name, width = params.parse_interval(q.get("interval"))
    start, end = params.bars_window(q.get("start"), q.get("end"), name, width, settings.max_range,
                                    settings.max_daily_bars_range, settings.clock.now_dt())
    rows = get_db().fetch(queries.BARS, symbol, width, start, end)
    data = [{"timestamp": _ts(r["bucket"]), "open": r["open"], "high": r["high"], "low": r["low"],
             "close": r["close"], "volume": r["volume"], "trades": r["trades"], "buy_volume": r["buy_volume"],
             "sell_volume": r["sell_volume"], "vwap": r["vwap"]} for r in rows]
    return {"symbol": symbol, "interval": name, "count": len(data), "data": data,
            "start": params.iso(start), "end": params.iso(end)}


@bp.route("/api/book/{symbol}", methods=["GET"])
@api_view
def get_book(symbol):
    settings = get_settings()
    symbol = params.parse_symbol(symbol)
    q = _query()
    at = params.parse_time(q["at"], "at") if q.get("at") is not None else settings.clock.now_dt()
    depth = params.parse_depth(q.get("depth"))
    lookback = params.shift(at, -settings.max_range)

    async def load(conn: asyncpg.Connection):
        snapshot_at = await conn.fetchval(queries.BOOK_SNAPSHOT_TIME, symbol, at, lookback)
        if snapshot_at is None:
            return None, []
        return snapshot_at, await conn.fetch(queries.BOOK_ROWS, symbol, snapshot_at, at)

    snapshot_at, rows = get_db().run(load)
    if snapshot_at is None:
        raise NotFound(f"no order-book snapshot (SNAPSHOT_IMAGE) of {symbol} at or before {params.iso(at)} "
                       f"in the {settings.max_range.days} days before it, so the book cannot be rebuilt; ask for "
                       f"a later time (see /api/level2/{symbol})", title="No order book")
    book = replay(BookRow(r["update_type"], r["bid_price"], r["bid_size"], r["bid_orders"], r["ask_price"],
                          r["ask_size"], r["ask_orders"]) for r in rows)
    bids, asks = book.levels(depth)
    return {"symbol": symbol, "at": params.iso(at), "as_of": _ts(rows[-1]["timestamp"]), "depth": depth,
            "snapshot_at": _ts(snapshot_at), "messages_applied": len(rows), "bids": bids, "asks": asks}
