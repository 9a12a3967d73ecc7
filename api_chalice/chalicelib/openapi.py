"""The OpenAPI 3 document of every route, its parameters and its responses.

Built from the same constants the routes use (limits, intervals, ranges from the settings), and
checked against the app's route table and real responses by the tests.
"""

from __future__ import annotations

from typing import Any

from . import params
from .config import Settings, get_settings
from .routes_data import LEVEL2, QUOTES, TICKS, RowKind
from .routes_subscriptions import COMMAND_STREAM

TIME_FORMATS = ("ISO-8601 with a UTC offset (2026-11-24T14:30:00Z, 2026-11-24T14:30:00.5+00:00), "
                "epoch seconds (1795530600, 1795530600.25) or epoch milliseconds (1795530600000)")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STR = {"type": "string"}
TS = {"type": "string", "format": "date-time"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
# A time in a query: an RFC 3339 date-time with an offset, or epoch seconds / milliseconds.
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": params.EPOCH_PATTERN}]}
# next_cursor as issued: unpadded URL-safe base64.
CURSOR = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 512}


def _obj(properties: dict[str, dict], required: list[str] | None = None, **extra: Any) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


def _schemas() -> dict[str, dict]:
    level = _obj({"price": NUM, "size": INT, "orders": _nullable(INT)})
    page_extra = {
        "next_cursor": _nullable({**STR, "description": "Pass as ?cursor= to get the next page; null on the last"}),
        "order": {"type": "string", "enum": list(params.ORDERS)},
        "start": _nullable(TS), "end": _nullable(TS),
    }

    def page_of(item: str) -> dict:
        return _obj({"symbol": STR, "count": INT, "limit": INT, "data": {"type": "array", "items": _ref(item)},
                     **page_extra})

    table_stats = {"total_records": INT, "earliest_timestamp": _nullable(TS), "latest_timestamp": _nullable(TS),
                   "recent_hour_count": INT,
                   "estimated": {"type": "array", "items": STR,
                                 "description": "Which figures of this object are planner estimates"}}
    latency = _obj({"p50_ms": NUM, "p99_ms": NUM, "samples": INT,
                    "as_of": {**TS, "description": "received_at of the newest trade summarised"}})
    heartbeat = _obj({"collector_id": STR, "connected": BOOL, "last_message_at": _nullable(TS),
                      "messages_per_s": NUM, "queue_depth": INT, "spool_bytes": INT, "updated_at": TS,
                      "age_s": NUM,
                      "latency": {"type": "object", "additionalProperties": latency,
                                  "description": "Per symbol: received_at minus the trade's exchange time (to the "
                                  "nanosecond where the trade carries it), median and 99th percentile in "
                                  "milliseconds, over the trades received in the heartbeat interval (at most the "
                                  "last 4,096); a quiet symbol keeps its last figures, with their as_of"}})
    return {
        "Error": _obj({"error": STR, "message": STR, "request_id": STR}),
        "Tick": _obj({"timestamp": {**TS, "description": "The exchange's time of the trade, to the microsecond "
                                    "(LastTrade source_ssboe/source_usecs; ssboe/usecs when the gateway sent no "
                                    "source time)"},
                      "symbol": STR, "price": NUM,
                      "volume": {**INT, "description": "Trade size in contracts"},
                      "direction": _nullable({"type": "string", "enum": ["BUY", "SELL"],
                                              "description": "Aggressor side; null when the exchange did not say"}),
                      "trade_type": {"type": "string", "enum": ["trade"]}, "exchange": STR,
                      "backfilled": {**BOOL, "description": "Recovered from the history plant after a gap"},
                      "timestamp_ns": {"type": "string", "pattern": "^[0-9]+$",
                                       "description": "The same exchange time in nanoseconds since the Unix epoch, "
                                       "as a decimal string (it exceeds the integers a JSON number carries exactly "
                                       "in JavaScript). Exact when the exchange sent nanoseconds; for rows without "
                                       "them (backfilled trades: the history replay has microseconds; rows stored "
                                       "before nanoseconds were kept) it is timestamp's microseconds x 1000"},
                      "gateway_at": _nullable({**TS, "description": "When Rithmic's ticker plant stamped the trade "
                                               "(LastTrade ssboe/usecs), a few hundred microseconds after "
                                               "timestamp; null for backfilled trades and rows stored before it "
                                               "was kept"})},
                     required=["timestamp", "symbol", "price", "volume", "direction", "trade_type", "exchange",
                               "backfilled", "timestamp_ns", "gateway_at"]),
        "Quote": _obj({"timestamp": TS, "symbol": STR, "exchange": STR, "bid_price": _nullable(NUM),
                       "bid_size": _nullable(INT), "bid_orders": _nullable(INT), "ask_price": _nullable(NUM),
                       "ask_size": _nullable(INT), "ask_orders": _nullable(INT)}),
        "Level": level,
        "Level2Update": _obj({"timestamp": TS, "symbol": STR, "exchange": STR,
                              "update_type": {"type": "string", "description": "Rithmic OrderBook update type: "
                                              "SNAPSHOT_IMAGE, BEGIN, MIDDLE, END, SOLO, CLEAR_ORDER_BOOK, NO_BOOK"},
                              "bids": {"type": "array", "items": _ref("Level")},
                              "asks": {"type": "array", "items": _ref("Level")},
                              "depth": {**INT, "description": "Price levels in the message (the longer side)"}}),
        "TicksPage": page_of("Tick"),
        "QuotesPage": page_of("Quote"),
        "Level2Page": page_of("Level2Update"),
        "Bar": _obj({"timestamp": {**TS, "description": "Start of the bucket"}, "open": NUM, "high": NUM,
                     "low": NUM, "close": NUM, "volume": INT, "trades": INT, "buy_volume": INT,
                     "sell_volume": INT, "vwap": _nullable(NUM)}),
        "Bars": _obj({"symbol": STR, "interval": {"type": "string", "enum": list(params.INTERVALS)},
                      "count": INT, "data": {"type": "array", "items": _ref("Bar")}, "start": TS, "end": TS}),
        "Book": _obj({"symbol": STR, "at": TS, "as_of": {**TS, "description": "Time of the last message applied"},
                      "depth": INT, "snapshot_at": TS, "messages_applied": INT,
                      "bids": {"type": "array", "items": _ref("Level")},
                      "asks": {"type": "array", "items": _ref("Level")}}),
        "Health": _obj({"status": {"type": "string", "enum": ["healthy", "unhealthy"]}, "timestamp": TS,
                        "services": _obj({"database": {"type": "string", "enum": ["connected", "unavailable"]},
                                          "redis": {"type": "string", "enum": ["connected", "unavailable"]}}),
                        "collector": _nullable(heartbeat)}),
        "Stats": _obj({"tick_data": _obj({**table_stats, "unique_symbols": INT}),
                       "level2_data": _obj(table_stats), "quote_data": _obj(table_stats), "timestamp": TS,
                       "notes": STR}),
        "Symbols": _obj({"count": INT, "symbols": {"type": "array", "items": _obj({
            "symbol": STR, "exchange": STR, "tick_count": INT, "last_tick_update": _nullable(TS),
            "level2_count": INT, "last_level2_update": _nullable(TS)})},
            "estimated": {"type": "array", "items": STR}}),
        # null, {} and {"exchange": null} all mean "infer the exchange from the product".
        "SubscriptionBody": _obj({"exchange": {"type": "string", "enum": [*params.EXCHANGES, None], "nullable": True,
                                               "description": "Left out or null: inferred from the product"}},
                                 required=[], additionalProperties=False, nullable=True),
        "SubscriptionResult": _obj({"status": {"type": "string", "enum": ["subscribed", "unsubscribed"]},
                                    "symbol": STR, "exchange": STR, "message": STR}),
        "Subscription": _obj({"symbol": STR, "exchange": STR, "desired": BOOL,
                              "status": {"type": "string", "enum": ["pending", "active", "failed", "unsubscribed"]},
                              "reason": _nullable(STR), "requested_at": TS, "status_since": TS}),
        "Gap": _obj({"start": TS, "end": _nullable(TS), "cause": STR, "dropped_rows": INT, "backfilled": BOOL,
                     "backfilled_rows": INT, "recorded_at": TS}),
        "Gaps": _obj({"symbol": STR, "start": TS, "end": TS, "count": INT,
                      "data": {"type": "array", "items": _ref("Gap")}}),
        "Subscriptions": _obj({"count": INT, "subscriptions": {"type": "array", "items": _ref("Subscription")}}),
    }


def _parameters(settings: Settings) -> dict[str, dict]:
    days = settings.max_range.days
    return {
        "symbol": {"name": "symbol", "in": "path", "required": True,
                   "description": "Contract: product code + month code (F G H J K M N Q U V X Z) + one-digit "
                                  "year, e.g. ESZ6; case-insensitive",
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,3}[FGHJKMNQUVXZfghjkmnquvxz][0-9]$"}},
        "start": {"name": "start", "in": "query", "required": False,
                  "description": f"Inclusive lower bound: {TIME_FORMATS}. Alone, it means [start, start + {days} "
                                 f"days)", "schema": TIME},
        "end": {"name": "end", "in": "query", "required": False,
                "description": f"Exclusive upper bound, same formats. Alone, it means [end - {days} days, end). "
                               f"end - start may be at most {days} days", "schema": TIME},
        "order": {"name": "order", "in": "query", "required": False,
                  "description": "desc: newest first (default); asc: oldest first",
                  "schema": {"type": "string", "enum": list(params.ORDERS), "default": "desc"}},
        "cursor": {"name": "cursor", "in": "query", "required": False,
                   "description": "next_cursor of the previous page: continues exactly after its last row "
                                  "(start, end and order come from it)", "schema": CURSOR},
        "interval": {"name": "interval", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": list(params.INTERVALS), "default": "1m"}},
        "bars_start": {"name": "start", "in": "query", "required": False,
                       "description": f"Inclusive: {TIME_FORMATS}. Default: {params.DEFAULT_BARS_BUCKETS} buckets "
                                      f"before end. At most {days} days before end for intraday bars "
                                      f"(and {params.MAX_BARS_BUCKETS} buckets), "
                                      f"{settings.max_daily_bars_range.days} days for 1d bars",
                       "schema": TIME},
        "bars_end": {"name": "end", "in": "query", "required": False,
                     "description": "Exclusive, same formats. Default: now", "schema": TIME},
        "at": {"name": "at", "in": "query", "required": False,
               "description": f"The instant to rebuild the book at (every message with timestamp <= at "
                              f"applied): {TIME_FORMATS}. Default: now", "schema": TIME},
        "depth": {"name": "depth", "in": "query", "required": False,
                  "description": f"Price levels per side; larger values are capped to {params.MAX_DEPTH}",
                  "schema": {"type": "integer", "minimum": 1, "default": params.DEFAULT_DEPTH}},
    }


def _limit(kind: RowKind) -> dict:
    return {"name": "limit", "in": "query", "required": False,
            "description": f"Rows per page, 1 to {kind.max_limit}; larger values are capped to {kind.max_limit} "
                           f"(the applied value is echoed in limit)",
            "schema": {"type": "integer", "minimum": 1, "default": kind.default_limit}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


def _operation(op_id: str, summary: str, ok: dict, *, parameters: list[dict] | None = None,
               errors: dict[str, str] | None = None, open_route: bool = False, body: bool = False,
               description: str | None = None) -> dict:
    responses = {"200": ok}
    for code, text in (errors or {}).items():
        responses[code] = _error(text)
    if not open_route:
        responses.setdefault("401", _error("API keys are configured and the x-api-key header is missing"))
        responses.setdefault("403", _error("The x-api-key header holds no valid key"))
    responses.setdefault("500", _error("An unexpected failure (no stack trace; quote the request_id)"))
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "parameters": parameters or [],
                          "responses": responses}
    if description:
        op["description"] = description
    if open_route:
        op["security"] = []
    if body:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref("SubscriptionBody")}}}
    return op


_cached: tuple[Settings, dict] | None = None


def document(settings: Settings | None = None) -> dict:
    global _cached
    settings = settings or get_settings()
    if _cached is not None and _cached[0] is settings:
        return _cached[1]
    p = {name: {"$ref": f"#/components/parameters/{name}"} for name in _parameters(settings)}
    bad = {"400": "A malformed parameter: the message says what is allowed",
           "503": "The database is unreachable or the query timed out"}
    paged = [p["start"], p["end"], p["order"], p["cursor"]]

    def raw_rows(kind: RowKind, op_id: str, summary: str, schema: str) -> dict:
        return {"get": _operation(op_id, summary, _json(_ref(schema), "A page of rows"),
                                  parameters=[p["symbol"], _limit(kind), *paged], errors=bad)}

    paths = {
        "/health": {"get": _operation(
            "getHealth", "PostgreSQL and Redis reachability, and the collector's heartbeat",
            _json(_ref("Health"), "Both answer"), open_route=True)},
        "/api/stats": {"get": _operation(
            "getStats", "Row counts and time spans per table, from counters maintained with every batch",
            _json(_ref("Stats"), "Statistics"), errors={"503": bad["503"]})},
        "/api/symbols": {"get": _operation(
            "getSymbols", "Symbols with data in the last 24 hours, with exact counts",
            _json(_ref("Symbols"), "Symbols"), errors={"503": bad["503"]})},
        "/api/ticks/{symbol}": raw_rows(TICKS, "getTicks", "Trades, newest first unless order=asc", "TicksPage"),
        "/api/level2/{symbol}": raw_rows(LEVEL2, "getLevel2", "Order-book messages as stored", "Level2Page"),
        "/api/quotes/{symbol}": raw_rows(QUOTES, "getQuotes", "Best bid and offer rows", "QuotesPage"),
        "/api/bars/{symbol}": {"get": _operation(
            "getBars", "OHLCV bars computed from stored trades (buckets without trades left out)",
            _json(_ref("Bars"), "Bars, oldest first"), parameters=[p["symbol"], p["interval"], p["bars_start"],
                                                                   p["bars_end"]], errors=bad)},
        "/api/book/{symbol}": {"get": _operation(
            "getBook", "The order book as it stood at an instant, rebuilt from the stored snapshot and updates",
            _json(_ref("Book"), "The book"), parameters=[p["symbol"], p["at"], p["depth"]],
            errors={**bad, "404": "No snapshot precedes `at` within the maximum range"})},
        "/api/subscribe/{symbol}": {
            "post": _operation(
                "subscribe", "Ask the collector to record a symbol",
                _json(_ref("SubscriptionResult"), "Queued durably"), parameters=[p["symbol"]], body=True,
                errors={"400": "Malformed symbol, unknown exchange, or a product whose exchange cannot be "
                               "inferred (send it)", "413": "Body over the size limit",
                        "503": "PostgreSQL unreachable (nothing was queued)"},
                description=f"Writes the desired subscription to PostgreSQL (durable) and sends a command on "
                            f"the Redis stream {COMMAND_STREAM}. The exchange is inferred from the product "
                            f"when left out."),
            "delete": _operation(
                "unsubscribe", "Ask the collector to stop recording a symbol",
                _json(_ref("SubscriptionResult"), "Queued durably"), parameters=[p["symbol"]], body=True,
                errors={"400": "Malformed symbol or exchange, or an unknown product without its exchange",
                        "409": "The symbol is subscribed on another exchange than the one sent (nothing changed)",
                        "413": "Body over the size limit", "503": "PostgreSQL unreachable (nothing was queued)"}),
        },
        "/api/gaps/{symbol}": {"get": _operation(
            "getGaps", "Recorded outages of the stream (cause, rows dropped) and whether their trades were backfilled",
            _json(_ref("Gaps"), "Gaps overlapping [start, end), oldest first"),
            parameters=[p["symbol"], p["start"], p["end"]], errors=bad)},
        "/api/subscriptions": {"get": _operation(
            "getSubscriptions", "The desired subscription set with the collector's status for each",
            _json(_ref("Subscriptions"), "Subscriptions"), errors={"503": bad["503"]})},
        "/openapi.json": {"get": _operation(
            "getOpenApi", "This document", {"description": "OpenAPI 3 document",
                                            "content": {"application/json": {"schema": {"type": "object"}}}})},
    }
    paths["/health"]["get"]["responses"]["503"] = _json(
        _ref("Health"), "PostgreSQL or Redis does not answer: status unhealthy, the failing service unavailable")
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "RithmicDataCollector API", "version": "2.0.0",
                 "description": "Market data recorded from Rithmic. Errors are always "
                                "{\"error\", \"message\", \"request_id\"}; unknown paths answer 404."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(settings),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }
    _cached = (settings, doc)
    return doc
