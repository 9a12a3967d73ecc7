"""The OpenAPI 3 document of every route, its parameters and its responses.

Built from tables: SCHEMAS (response and body shapes), PARAMETERS (shared parameters) and
OPERATIONS (one `Op` per route and method, naming those). Adding a route is one `Op` line plus its
schemas; the error answers every route can get (from the API, and from NGINX or API Gateway in
front of it) are added to each operation here, in one place. The constants come from the code the
routes use (limits, intervals, ranges from the settings), and the tests check the document against
the OpenAPI 3.0 specification, the app's route table and real responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rdc_common.products import PRODUCTS

from . import params, routes_archive
from .config import Settings, get_settings
from .routes_data import LEVEL2, QUOTES, TICKS, RowKind
from .routes_subscriptions import COMMAND_STREAM

TIME_FORMATS = ("ISO-8601 with a UTC offset (2026-11-24T14:30:00Z, 2026-11-24T14:30:00.5+00:00), "
                "epoch seconds (1795530600, 1795530600.25) or epoch milliseconds (1795530600000)")
# What the {symbol} path segment accepts.
CONTRACT_PATTERN = "[A-Za-z0-9]{1,3}[FGHJKMNQUVXZfghjkmnquvxz][0-9]"


def _any_case(code: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in code)


# The catalogue's product codes, any case: continuous symbols and product subscriptions exist for these only.
PRODUCT_ALTERNATIVES = "|".join(_any_case(code) for code in sorted(PRODUCTS))
PRODUCT_PATTERN = f"^({PRODUCT_ALTERNATIVES})$"
CONTINUOUS_PATTERN = f"({PRODUCT_ALTERNATIVES})\\.[cC]\\.[0-9]"
SYMBOL_PATTERN = f"^({CONTRACT_PATTERN}|{CONTINUOUS_PATTERN})$"
SUBSCRIBE_PATTERN = f"^({CONTRACT_PATTERN}|{PRODUCT_ALTERNATIVES})$"
SYMBOL_DESCRIPTION = ("Contract: product code + month code (F G H J K M N Q U V X Z) + one-digit year, e.g. ESZ6; or a "
                      "continuous symbol (Databento's notation, calendar roll): product code + .c. + rank, e.g. ES.c.0 "
                      "for the front month at each instant, ES.c.1 for the contract after it. Case-insensitive. A "
                      "continuous symbol serves each instant from the contract that was front then (the roll instant "
                      "is the open of the roll date's session, as the collector rolls); rows keep their real "
                      "contract symbol and prices are not adjusted")
SUBSCRIBE_DESCRIPTION = ("A contract (ESZ6: recorded until it expires, never rolled) or a catalogue product code (ES: "
                         "its front month, rolled by the collector for as long as it runs). Case-insensitive. "
                         "Continuous symbols (ES.c.0) cannot be subscribed: subscribe the product")


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    """The schema, or null. An enum must list null itself (OpenAPI 3.0.3: `nullable` does not widen
    an `enum`), or strict clients such as generated ones refuse the null the API sends."""
    out = {**schema, "nullable": True}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def array(item: dict) -> dict:
    return {"type": "array", "items": item}


def enum(*values: str | None, **extra: Any) -> dict:
    return {"type": "string", "enum": list(values), **extra}


STR = {"type": "string"}
TS = {"type": "string", "format": "date-time"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
# A time in a query: an RFC 3339 date-time with an offset, or epoch seconds / milliseconds.
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": params.EPOCH_PATTERN}]}
# next_cursor as issued: unpadded URL-safe base64.
CURSOR = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 512}


def obj(properties: dict[str, dict], required: list[str] | None = None, **extra: Any) -> dict:
    """An object whose properties are all required unless `required` says otherwise (an empty list
    leaves the keyword out: OpenAPI 3.0 forbids `"required": []`)."""
    names = list(properties) if required is None else required
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if names:
        schema["required"] = names
    return {**schema, **extra}


def _page_of(item: str) -> dict:
    return obj({"symbol": STR, "count": INT, "limit": INT, "data": array(ref(item)),
                "next_cursor": nullable({**STR, "description": "Pass as ?cursor= to get the next page; null on "
                                                               "the last"}),
                "order": enum(*params.ORDERS), "start": nullable(TS), "end": nullable(TS)})


_TABLE_STATS = {"total_records": INT, "earliest_timestamp": nullable(TS), "latest_timestamp": nullable(TS),
                "recent_hour_count": INT,
                "estimated": {**array(STR), "description": "Which figures of this object are planner estimates"}}
_LEVEL = obj({"price": NUM, "size": INT, "orders": nullable(INT)})
_LATENCY = obj({"p50_ms": NUM, "p99_ms": NUM, "samples": INT,
                "as_of": {**TS, "description": "received_at of the newest trade summarised"}})
_MARKET_STATUS = obj({
    "market": nullable(enum("open", "closed", "halted",
                            description="At the collector's last heartbeat, from the product's trading calendar; "
                                        "null for a product the catalogue lacks")),
    "trade_date": nullable({**STR, "format": "date", "description": "The session in effect (null while closed)"}),
    "next_open": nullable({**TS, "description": "While closed or halted: when the market opens next"}),
    "next_close": nullable({**TS, "description": "While open: when the market closes or halts next"}),
    "last_trade_at": nullable({**TS, "description": "Exchange time of the last trade received"}),
    "recorded_until": nullable({**TS, "description": "Everything the market sent up to this instant is stored "
                                                     "or inside a recorded gap"})})
_HEARTBEAT = obj({"collector_id": STR, "connected": BOOL, "last_message_at": nullable(TS), "messages_per_s": NUM,
                  "queue_depth": INT, "spool_bytes": INT, "updated_at": TS, "age_s": NUM,
                  "latency": {"type": "object", "additionalProperties": _LATENCY,
                              "description": "Per symbol: received_at minus the trade's exchange time (to the "
                                             "nanosecond where the trade carries it), median and 99th percentile "
                                             "in milliseconds, over the trades received in the heartbeat interval "
                                             "(at most the last 4,096); a quiet symbol keeps its last figures, "
                                             "with their as_of"},
                  "markets": {"type": "object", "additionalProperties": ref("MarketStatus"),
                              "description": "Per subscribed contract symbol: its market at the collector's last "
                                             "heartbeat, its last trade and how far it is recorded"}})

SCHEMAS: dict[str, dict] = {
    "Error": obj({"error": {**STR, "description": "A short title"},
                  "message": {**STR, "description": "What to do about it"},
                  "request_id": {**STR, "description": "Quote it when reporting a problem; it is in every log "
                                                       "line of the request"}},
                 description="Every error the API itself answers"),
    "ProxyError": obj({"error": STR, "message": STR,
                       "request_id": {**STR, "description": "Present when the gateway has one (API Gateway); "
                                                            "absent from NGINX's own answers"}},
                      required=["error", "message"],
                      description="An error answered by what stands in front of the API (NGINX locally, API "
                                  "Gateway in AWS): rate limit, API unreachable or too slow"),
    "Tick": obj({"timestamp": {**TS, "description": "The exchange's time of the trade, to the microsecond "
                                    "(LastTrade source_ssboe/source_usecs; ssboe/usecs when the gateway sent no "
                                    "source time)"},
                 "symbol": STR, "price": NUM,
                 "volume": {**INT, "description": "Trade size in contracts"},
                 "direction": nullable(enum("BUY", "SELL",
                                            description="Aggressor side; null when the exchange did not say")),
                 "trade_type": enum("trade"), "exchange": STR,
                 "backfilled": {**BOOL, "description": "Recovered from the history plant after a gap"},
                 "timestamp_ns": {"type": "string", "pattern": "^[0-9]+$",
                                  "description": "The same exchange time in nanoseconds since the Unix epoch, as a "
                                  "decimal string (it exceeds the integers a JSON number carries exactly in "
                                  "JavaScript). Exact when the exchange sent nanoseconds; for rows without them "
                                  "(backfilled trades: the history replay has microseconds; rows stored before "
                                  "nanoseconds were kept) it is timestamp's microseconds x 1000"},
                 "gateway_at": nullable({**TS, "description": "When Rithmic's ticker plant stamped the trade "
                                         "(LastTrade ssboe/usecs), a few hundred microseconds after timestamp; null "
                                         "for backfilled trades and rows stored before it was kept"})}),
    "Quote": obj({"timestamp": TS, "symbol": STR, "exchange": STR, "bid_price": nullable(NUM),
                  "bid_size": nullable(INT), "bid_orders": nullable(INT), "ask_price": nullable(NUM),
                  "ask_size": nullable(INT), "ask_orders": nullable(INT)}),
    "Level": _LEVEL,
    "Level2Update": obj({"timestamp": TS, "symbol": STR, "exchange": STR,
                         "update_type": {**STR, "description": "Rithmic OrderBook update type: SNAPSHOT_IMAGE, "
                                                               "BEGIN, MIDDLE, END, SOLO, CLEAR_ORDER_BOOK, NO_BOOK"},
                         "bids": array(ref("Level")), "asks": array(ref("Level")),
                         "depth": {**INT, "description": "Price levels in the message (the longer side)"}}),
    "TicksPage": _page_of("Tick"),
    "QuotesPage": _page_of("Quote"),
    "Level2Page": _page_of("Level2Update"),
    "Bar": obj({"timestamp": {**TS, "description": "Start of the bucket"}, "open": NUM, "high": NUM, "low": NUM,
                "close": NUM, "volume": INT, "trades": INT, "buy_volume": INT, "sell_volume": INT,
                "vwap": nullable(NUM)}),
    "ContractSpan": obj({"symbol": STR, "start": TS, "end": {**TS, "description": "Exclusive"}},
                        description="A contract and the span [start, end) it serves"),
    "Bars": obj({"symbol": STR, "interval": enum(*params.INTERVALS), "count": INT, "data": array(ref("Bar")),
                 "start": TS, "end": TS,
                 "contracts": {**array(ref("ContractSpan")),
                               "description": "The contracts whose trades the bars aggregate, oldest first: the "
                                              "symbol itself over [start, end), or for a continuous symbol each "
                                              "contract over the part of the window it was served where "
                                              "trades were recorded. A bucket that spans a roll aggregates the "
                                              "trades of the contract served at each trade's instant"}}),
    "Book": obj({"symbol": STR,
                 "contract": {**STR, "description": "The contract whose book this is: the symbol asked for, or the "
                                                    "contract a continuous symbol stood for at `at`"},
                 "at": TS, "as_of": {**TS, "description": "Time of the last message applied"},
                 "depth": INT, "snapshot_at": TS, "messages_applied": INT, "bids": array(ref("Level")),
                 "asks": array(ref("Level"))}),
    "MarketStatus": _MARKET_STATUS,
    "Health": obj({"status": enum("healthy", "unhealthy"), "timestamp": TS,
                   "services": obj({"database": enum("connected", "unavailable"),
                                    "redis": enum("connected", "unavailable")}),
                   "collector": nullable(_HEARTBEAT)}),
    "Stats": obj({"tick_data": obj({**_TABLE_STATS, "unique_symbols": INT}), "level2_data": obj(_TABLE_STATS),
                  "quote_data": obj(_TABLE_STATS), "timestamp": TS, "notes": STR}),
    "Symbols": obj({"count": INT, "symbols": array(obj({
        "symbol": STR, "exchange": STR, "tick_count": INT, "last_tick_update": nullable(TS), "level2_count": INT,
        "last_level2_update": nullable(TS)})), "estimated": array(STR)}),
    # null, {} and {"exchange": null} all mean "infer the exchange from the product".
    "SubscriptionBody": obj({"exchange": nullable(enum(*params.EXCHANGES,
                                                       description="Left out or null: inferred from the product"))},
                            required=[], additionalProperties=False, nullable=True),
    "SubscriptionResult": obj({"status": enum("subscribed", "unsubscribed"), "symbol": STR, "exchange": STR,
                               "message": STR}),
    "Subscription": obj({"symbol": STR, "exchange": STR, "desired": BOOL,
                         "status": enum("pending", "active", "failed", "unsubscribed", "expired"),
                         "reason": nullable(STR), "requested_at": TS, "status_since": TS,
                         "kind": enum("contract", "product",
                                      description="product: a product followed as its front month (symbol is "
                                                  "the product code)"),
                         "product": nullable({**STR, "description": "For a contract a followed product brought in: "
                                                                    "that product (it is unsubscribed when it "
                                                                    "expires); null for a contract subscribed "
                                                                    "explicitly"})}),
    "Subscriptions": obj({"count": INT, "subscriptions": array(ref("Subscription"))}),
    "Gap": obj({"symbol": {**STR, "description": "The contract the gap was recorded for"},
                "start": TS, "end": nullable(TS), "cause": STR, "dropped_rows": INT, "backfilled": BOOL,
                "backfilled_rows": INT, "recorded_at": TS}),
    "Gaps": obj({"symbol": STR, "start": TS, "end": TS, "count": INT, "data": array(ref("Gap"))}),
    "LiveTrade": obj({"timestamp": TS, "price": NUM, "size": INT,
                      "aggressor": nullable(enum("BUY", "SELL", description="null when the exchange did not say"))}),
    "Live": obj({"symbol": STR, "exchange": STR,
                 "published_at": {**TS, "description": "When the collector published this snapshot (its clock)"},
                 "age_s": {**NUM, "description": "Seconds since published_at on the API's clock; the collector "
                                                 "publishes a changed symbol at most every 250 ms, and a quiet or "
                                                 "closed market leaves the last snapshot standing"},
                 "last_message_at": nullable({**TS, "description": "When the collector last received market data "
                                                                   "(any symbol)"}),
                 "last_trade": nullable(ref("LiveTrade")),
                 "bbo": nullable(obj({"bid_price": nullable(NUM), "bid_size": nullable(INT),
                                      "bid_orders": nullable(INT), "ask_price": nullable(NUM),
                                      "ask_size": nullable(INT), "ask_orders": nullable(INT)})),
                 "book": obj({"trusted": {**BOOL, "description": "false after an outage until the next snapshot "
                                                                 "rebuilds the book (levels are then empty)"},
                              "depth": INT, "bids": array(ref("Level")), "asks": array(ref("Level"))}),
                 "trades": {**array(ref("LiveTrade")), "description": "The last 50 trades, newest first"}}),
    "Roll": obj({"from": nullable({**STR, "description": "Null for the first front month the product was followed "
                                                          "with"}),
                 "to": STR, "at": {**TS, "description": "When the new contract became the front month"},
                 "recorded_at": TS}),
    "ScheduledRoll": obj({"status": enum("scheduled", description="Computed from the catalogue's roll rule and "
                                                                  "the trading calendar, not yet recorded"),
                          "from": STR, "to": STR, "at": TS}),
    "Rolls": obj({"product": STR, "exchange": STR,
                  "front_month": {**STR, "description": "The front month now, by the catalogue and the calendar"},
                  "count": INT, "rolls": {**array(ref("Roll")), "description": "Recorded by the collector, oldest "
                                                                               "first"},
                  "next_roll": ref("ScheduledRoll")}),
    "ArchiveFile": obj({"date": {**STR, "format": "date", "description": "The UTC day of the rows"},
                        "table": enum("ticks", "quotes", "level2"),
                        "rows": INT, "bytes": {**INT, "description": "Size of the Parquet file"},
                        "sha256": {**STR, "description": "SHA-256 of the file's bytes"},
                        "first_timestamp": nullable(TS), "last_timestamp": nullable(TS),
                        "url": nullable({**STR, "description": "GET it (pandas.read_parquet, DuckDB, curl): a "
                                                               "presigned S3 URL in AWS, a URL through NGINX "
                                                               "locally; null when no download location is set"})}),
    "ArchiveFiles": obj({"symbol": STR, "start": {**STR, "format": "date"},
                         "end": {**STR, "format": "date", "description": "Exclusive"}, "count": INT,
                         "expires_in": nullable({**INT, "description": "Seconds the presigned URLs stay valid "
                                                                       "(null: they do not expire)"}),
                         "data": array(ref("ArchiveFile"))}),
    "OpenApiDocument": {"type": "object", "description": "This document"},
}


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def parameters(settings: Settings) -> dict[str, dict]:
    """Shared parameters, referenced by name from OPERATIONS (several share a query name: `bars_start`
    is `start` with bars' defaults)."""
    days = settings.max_range.days
    return {
        "symbol": {"name": "symbol", "in": "path", "required": True, "description": SYMBOL_DESCRIPTION,
                   "schema": {"type": "string", "pattern": SYMBOL_PATTERN}},
        # Routes that take a contract only (the live snapshot, the archive's files): no continuous symbols.
        "contract": {"name": "symbol", "in": "path", "required": True,
                     "description": "Contract: product code + month code (F G H J K M N Q U V X Z) + one-digit "
                                    "year, e.g. ESZ6; case-insensitive",
                     "schema": {"type": "string", "pattern": f"^{CONTRACT_PATTERN}$"}},
        "subscribe_symbol": {"name": "symbol", "in": "path", "required": True, "description": SUBSCRIBE_DESCRIPTION,
                             "schema": {"type": "string", "pattern": SUBSCRIBE_PATTERN}},
        "product": {"name": "product", "in": "path", "required": True,
                    "description": "A catalogue product code, e.g. ES; case-insensitive",
                    "schema": {"type": "string", "pattern": PRODUCT_PATTERN}},
        "start": _query("start", f"Inclusive lower bound: {TIME_FORMATS}. Alone, it means [start, start + {days} "
                                 f"days)", TIME),
        "end": _query("end", f"Exclusive upper bound, same formats. Alone, it means [end - {days} days, end). "
                             f"end - start may be at most {days} days", TIME),
        # No schema default: generated clients send defaults, and a cursor's pages must not be sent
        # an order other than the cursor's.
        "order": _query("order", "desc: newest first (the default); asc: oldest first. With a cursor, leave it "
                                 "out or send the cursor's own", enum(*params.ORDERS)),
        "cursor": _query("cursor", "next_cursor of the previous page: continues exactly after its last row "
                                   "(start, end and order come from it)", CURSOR),
        "interval": _query("interval", "Bar width", {**enum(*params.INTERVALS), "default": "1m"}),
        "bars_start": _query("start", f"Inclusive: {TIME_FORMATS}. Default: {params.DEFAULT_BARS_BUCKETS} buckets "
                                      f"before end. At most {days} days before end for intraday bars (and "
                                      f"{params.MAX_BARS_BUCKETS} buckets), {settings.max_daily_bars_range.days} "
                                      f"days for 1d bars", TIME),
        "bars_end": _query("end", "Exclusive, same formats. Default: now", TIME),
        "at": _query("at", f"The instant to rebuild the book at (every message with timestamp <= at applied): "
                           f"{TIME_FORMATS}. Default: now", TIME),
        "depth": _query("depth", f"Price levels per side; larger values are capped to {params.MAX_DEPTH}",
                        {"type": "integer", "minimum": 1, "default": params.DEFAULT_DEPTH}),
        "archive_table": _query("table", "Only this table's files (default: all three)",
                                enum("ticks", "quotes", "level2", "tick_data", "quote_data", "level2_data")),
        "archive_start": _query("start", f"First UTC day, YYYY-MM-DD, or a time ({TIME_FORMATS}: its day). Alone, "
                                         f"it means {routes_archive.DEFAULT_DAYS} days from it; default: "
                                         f"{routes_archive.DEFAULT_DAYS} days before end",
                                {"anyOf": [{"type": "string", "format": "date"}, TIME]}),
        "archive_end": _query("end", f"Day after the last (exclusive), YYYY-MM-DD, or a time (the days up to it). "
                                     f"Default: tomorrow. With start, at most {routes_archive.MAX_DAYS} days after it",
                              {"anyOf": [{"type": "string", "format": "date"}, TIME]}),
        **{f"limit_{kind.name}": _query("limit", f"Rows per page, 1 to {kind.max_limit}; larger values are capped "
                                                 f"to {kind.max_limit} (the applied value is echoed in limit)",
                                        {"type": "integer", "minimum": 1, "default": kind.default_limit})
           for kind in (TICKS, LEVEL2, QUOTES)},
    }


# -- errors -----------------------------------------------------------------------------

BAD_REQUEST = "A malformed parameter: the message says what is allowed"
DB_UNAVAILABLE = "The database is unreachable or the query timed out; retry later"
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
# Every route may get these from the API itself ...
API_ERRORS = {"500": "An unexpected failure (no stack trace; quote the request_id)"}
KEYED_ERRORS = {"401": "API keys are configured and the x-api-key header is missing",
                "403": "The x-api-key header holds no valid key"}
# ... and these from NGINX or API Gateway in front of it (ProxyError: no request_id from NGINX).
PROXY_ERRORS = {"429": "Rate limit exceeded for your address or key: wait Retry-After seconds and retry",
                "502": "The API is not reachable behind the proxy; retry shortly",
                "504": "The API did not answer in time; retry"}


@dataclass(frozen=True)
class Op:
    """One route and method: what it answers with 200, which parameters it takes, which errors it
    can answer besides the ones every route can."""

    method: str
    path: str
    op_id: str
    summary: str
    ok: str  # the schema name of the 200 body
    ok_text: str
    params: tuple[str, ...] = ()  # names in parameters()
    errors: dict[str, str] = field(default_factory=dict)
    tag: str = "market data"
    open: bool = False  # served without an API key
    body: str | None = None  # an optional JSON body of this schema
    description: str | None = None


CONTINUOUS_PAGING = ("With a continuous symbol (ES.c.0) the rows of each instant come from the contract that "
                     "was front then; the cursor continues across a roll exactly, in both orders")


def _paged(kind: RowKind, path: str, op_id: str, summary: str, schema: str) -> Op:
    return Op("get", path, op_id, summary, schema, "A page of rows",
              ("symbol", f"limit_{kind.name}", "start", "end", "order", "cursor"),
              {"400": BAD_REQUEST, "503": DB_UNAVAILABLE}, description=CONTINUOUS_PAGING)


OPERATIONS: tuple[Op, ...] = (
    Op("get", "/health", "getHealth", "PostgreSQL and Redis reachability, and the collector's heartbeat", "Health",
       "Both answer", errors={"503": "PostgreSQL or Redis does not answer"}, tag="service", open=True),
    Op("get", "/api/stats", "getStats", "Row counts and time spans per table, from counters maintained with "
       "every batch", "Stats", "Statistics", errors={"503": DB_UNAVAILABLE}, tag="service"),
    Op("get", "/api/symbols", "getSymbols", "Symbols with data in the last 24 hours, with exact counts", "Symbols",
       "Symbols", errors={"503": DB_UNAVAILABLE}),
    _paged(TICKS, "/api/ticks/{symbol}", "getTicks", "Trades, newest first unless order=asc", "TicksPage"),
    _paged(LEVEL2, "/api/level2/{symbol}", "getLevel2", "Order-book messages as stored", "Level2Page"),
    _paged(QUOTES, "/api/quotes/{symbol}", "getQuotes", "Best bid and offer rows", "QuotesPage"),
    Op("get", "/api/bars/{symbol}", "getBars", "OHLCV bars computed from stored trades (buckets without trades "
       "left out)", "Bars", "Bars, oldest first", ("symbol", "interval", "bars_start", "bars_end"),
       {"400": BAD_REQUEST, "503": DB_UNAVAILABLE},
       description="With a continuous symbol (ES.c.0) each trade counts when its contract was the one served at "
                   "the trade's instant; `contracts` lists which contract served which span"),
    Op("get", "/api/book/{symbol}", "getBook", "The order book as it stood at an instant, rebuilt from the stored "
       "snapshot and updates", "Book", "The book", ("symbol", "at", "depth"),
       {"400": BAD_REQUEST, "404": "No snapshot precedes `at` within the maximum range", "503": DB_UNAVAILABLE},
       description="With a continuous symbol (ES.c.0), the book of the contract it stood for at `at` (named in "
                   "`contract`)"),
    Op("get", "/api/rolls/{product}", "getRolls", "The rolls of a product followed as its front month: those the "
       "collector recorded and the next one scheduled", "Rolls", "Rolls, oldest first, and the next scheduled one",
       ("product",), {"400": "Not a catalogue product code", "503": DB_UNAVAILABLE},
       description="A roll is recorded when the collector, following the product (SYMBOLS=ES or POST "
                   "/api/subscribe/ES), subscribes its new front month at the open of the roll date's session. "
                   "next_roll is computed from the catalogue's roll rule and the trading calendar."),
    Op("post", "/api/subscribe/{symbol}", "subscribe", "Ask the collector to record a contract, or to follow a "
       "product's front month", "SubscriptionResult", "Queued durably", ("subscribe_symbol",),
       {"400": "Malformed symbol, a continuous symbol (subscribe the product instead), unknown exchange, or a "
               "product whose exchange cannot be inferred (send it)",
        "413": "Body over the size limit", "503": "PostgreSQL unreachable (nothing was queued)"},
       tag="subscriptions", body="SubscriptionBody",
       description=f"Writes the desired subscription to PostgreSQL (durable) and sends a command on the Redis "
                   f"stream {COMMAND_STREAM}. The exchange is inferred from the product when left out. A product "
                   f"code (ES) is stored with kind 'product': the collector records its front month and rolls it."),
    Op("delete", "/api/subscribe/{symbol}", "unsubscribe", "Ask the collector to stop recording a contract or "
       "following a product", "SubscriptionResult", "Queued durably", ("subscribe_symbol",),
       {"400": "Malformed symbol or exchange, a continuous symbol, or an unknown product without its exchange",
        "409": "The symbol is subscribed on another exchange than the one sent (nothing changed)",
        "413": "Body over the size limit", "503": "PostgreSQL unreachable (nothing was queued)"},
       tag="subscriptions", body="SubscriptionBody"),
    Op("get", "/api/live/{symbol}", "getLive", "The live snapshot the collector keeps in Redis: last trade, best "
       "bid/offer, the top 10 book levels with order counts and the last 50 trades, with its age", "Live",
       "The latest snapshot", ("contract",),
       {"400": BAD_REQUEST, "404": "No snapshot of this symbol: not recorded, no data yet, or LIVE_SNAPSHOTS=0",
        "503": "Redis is not answering"},
       description="What the web console at / polls while it is open. Read from Redis only (ElastiCache in AWS), "
                   "never from PostgreSQL, so it stays cheap at several requests a second."),
    Op("get", "/api/gaps/{symbol}", "getGaps", "Recorded outages of the stream (cause, rows dropped) and whether "
       "their trades were backfilled", "Gaps", "Gaps overlapping [start, end), oldest first",
       ("symbol", "start", "end"), {"400": BAD_REQUEST, "503": DB_UNAVAILABLE}),
    Op("get", "/api/archive/{symbol}", "getArchiveFiles", "Archived Parquet files of a symbol, one per table and "
       "UTC day, with download links", "ArchiveFiles", "Files of complete, verified days, oldest first",
       ("contract", "archive_table", "archive_start", "archive_end"), {"400": BAD_REQUEST, "503": DB_UNAVAILABLE},
       description="Each file holds one table's rows of the symbol for one UTC day, sorted by (timestamp, id), "
                   "with exactly the columns and types of the database (microsecond UTC timestamps, the book's "
                   "arrays, NULLs). Read one with pandas.read_parquet(url) or DuckDB's read_parquet(url)."),
    Op("get", "/api/subscriptions", "getSubscriptions", "The desired subscription set with the collector's status "
       "for each", "Subscriptions", "Subscriptions", errors={"503": DB_UNAVAILABLE}, tag="subscriptions"),
    Op("get", "/openapi.json", "getOpenApi", "This document", "OpenApiDocument", "OpenAPI 3 document",
       tag="service"),
)

# Answers whose body is not the Error shape.
SPECIAL_RESPONSES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("get", "/health", "503"): ("Health", "PostgreSQL or Redis does not answer: status unhealthy, the failing "
                                          "service unavailable"),
}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _responses(op: Op) -> dict[str, dict]:
    api_errors = {**op.errors, **({} if op.open else KEYED_ERRORS), **API_ERRORS}
    responses = {"200": _json(ref(op.ok), op.ok_text)}
    for code in sorted({*api_errors, *PROXY_ERRORS}):
        special = SPECIAL_RESPONSES.get((op.method, op.path, code))
        if special is not None:
            responses[code] = _json(ref(special[0]), special[1])
        elif code in api_errors:
            # A 503 from the API is worth retrying like the proxy's own; say when.
            headers = RETRY_AFTER if code == "503" else None
            responses[code] = _json(ref("Error"), api_errors[code], headers)
        else:
            responses[code] = _json(ref("ProxyError"), PROXY_ERRORS[code], RETRY_AFTER if code == "429" else None)
    return responses


def _operation(op: Op) -> dict:
    out: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": [op.tag],
                           "parameters": [{"$ref": f"#/components/parameters/{name}"} for name in op.params],
                           "responses": _responses(op)}
    if op.description:
        out["description"] = op.description
    if op.open:
        out["security"] = []
    if op.body:
        out["requestBody"] = {"required": False, "content": {"application/json": {"schema": ref(op.body)}}}
    return out


_cached: tuple[Settings, dict] | None = None


def document(settings: Settings | None = None) -> dict:
    global _cached
    settings = settings or get_settings()
    if _cached is not None and _cached[0] is settings:
        return _cached[1]
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "RithmicDataCollector API", "version": "2.0.0",
                 "description": "Market data recorded from Rithmic. Errors are always "
                                "{\"error\", \"message\", \"request_id\"} (the proxy's own 429/502/504 may lack "
                                "request_id); unknown paths answer 404. Interactive documentation: /docs; "
                                "web console: /."},
        "tags": [{"name": "market data", "description": "Recorded trades, quotes, order book, bars and gaps"},
                 {"name": "subscriptions", "description": "What the collector records"},
                 {"name": "service", "description": "Health, statistics and this document"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": parameters(settings),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }
    _cached = (settings, doc)
    return doc
