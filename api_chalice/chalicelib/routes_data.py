"""Recorded market data: trades, quotes and order-book messages (paged), bars, and the book at an instant.

Every route takes a contract symbol (ESZ6) or a continuous symbol (ES.c.0) and asks chalicelib.store
for the rows; the response's `symbol` is the one asked for, each row's `symbol` its real contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest

import asyncpg
from chalice import Blueprint

from rdc_common.book import BookRow, replay

from . import context, params, store
from .config import get_settings
from .errors import NotFound
from .middleware import api_view
from .observability import MetricUnit, metrics

bp = Blueprint(__name__)

UTC = dt.UTC
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
    name: str  # also the store's name of the table
    default_limit: int
    max_limit: int
    to_json: Callable[[asyncpg.Record], dict]


TICKS = RowKind("ticks", 100, 1000, tick_json)
LEVEL2 = RowKind("level2", 50, 500, level2_json)
QUOTES = RowKind("quotes", 100, 1000, quote_json)


def page(kind: RowKind, raw_symbol: str) -> dict:
    """One page of rows in (timestamp, id) order, with the cursor that continues after its last row."""
    settings = get_settings()
    symbol = params.parse_data_symbol(raw_symbol)
    req = params.page_request(_query(), kind=kind.name, symbol=symbol, default_limit=kind.default_limit,
                              max_limit=kind.max_limit, max_range=settings.max_range)
    # One row more than asked tells whether another page exists.
    rows = store.rows(kind.name, symbol, req.start, req.end, req.after, req.order, req.limit + 1)
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


def _segment_json(seg) -> dict:
    return {"symbol": seg.symbol, "start": params.iso(seg.start), "end": params.iso(seg.end)}


@bp.route("/api/bars/{symbol}", methods=["GET"])
@api_view
def get_bars(symbol):
    settings = get_settings()
    symbol = params.parse_data_symbol(symbol)
    q = _query()
    name, width = params.parse_interval(q.get("interval"))
    start, end = params.bars_window(q.get("start"), q.get("end"), name, width, settings.max_range,
                                    settings.max_daily_bars_range, settings.clock.now_dt())
    rows, segments = store.bars(symbol, width, start, end)
    data = [{"timestamp": _ts(r["bucket"]), "open": r["open"], "high": r["high"], "low": r["low"],
             "close": r["close"], "volume": r["volume"], "trades": r["trades"], "buy_volume": r["buy_volume"],
             "sell_volume": r["sell_volume"], "vwap": r["vwap"]} for r in rows]
    return {"symbol": symbol, "interval": name, "count": len(data), "data": data,
            "start": params.iso(start), "end": params.iso(end), "contracts": [_segment_json(s) for s in segments]}


@bp.route("/api/book/{symbol}", methods=["GET"])
@api_view
def get_book(symbol):
    settings = get_settings()
    symbol = params.parse_data_symbol(symbol)
    q = _query()
    at = params.parse_time(q["at"], "at") if q.get("at") is not None else settings.clock.now_dt()
    depth = params.parse_depth(q.get("depth"))
    found = store.book(symbol, at, params.shift(at, -settings.max_range))
    if found.snapshot_at is None:
        which = symbol if found.contract in (None, symbol) else f"{found.contract} ({symbol} at that instant)"
        raise NotFound(f"no order-book snapshot (SNAPSHOT_IMAGE) of {which} at or before {params.iso(at)} "
                       f"in the {settings.max_range.days} days before it, so the book cannot be rebuilt; ask for "
                       f"a later time (see /api/level2/{symbol})", title="No order book")
    rows = found.rows
    book = replay(BookRow(r["update_type"], r["bid_price"], r["bid_size"], r["bid_orders"], r["ask_price"],
                          r["ask_size"], r["ask_orders"]) for r in rows)
    bids, asks = book.levels(depth)
    return {"symbol": symbol, "contract": found.contract, "at": params.iso(at), "as_of": _ts(rows[-1]["timestamp"]),
            "depth": depth, "snapshot_at": _ts(found.snapshot_at), "messages_applied": len(rows),
            "bids": bids, "asks": asks}
