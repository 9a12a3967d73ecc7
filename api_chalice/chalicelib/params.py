"""Pure parsing and validation of what a request carries: symbols, limits, times, ranges, cursors, bodies.

Every function either returns a clean value or raises BadRequest with a sentence saying what is
allowed. No I/O, so the unit tests drive it directly.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rdc_common.products import (
    EXCHANGES,
    PRODUCTS,
    SymbolError,
    check_month,
    infer_exchange,
    is_product_code,
    looks_continuous,
    normalize_exchange,
    normalize_symbol,
    parse_continuous,
    split_symbol,
)

from .errors import BadRequest

__all__ = ["EXCHANGES"]  # re-exported for the OpenAPI document; everything else is used by name

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ORDERS = ("asc", "desc")
INTERVALS: dict[str, dt.timedelta] = {
    "1s": dt.timedelta(seconds=1),
    "1m": dt.timedelta(minutes=1),
    "5m": dt.timedelta(minutes=5),
    "15m": dt.timedelta(minutes=15),
    "1h": dt.timedelta(hours=1),
    "1d": dt.timedelta(days=1),
}
# A bars response holds at most this many buckets; it bounds 1s bars to about 28 hours.
MAX_BARS_BUCKETS = 100_000
# Without `start`, bars cover the last this many buckets (within the maximum range).
DEFAULT_BARS_BUCKETS = 1000
DEFAULT_DEPTH, MAX_DEPTH = 10, 100
CURSOR_VERSION = 1
_MAX_CURSOR_CHARS = 512
_MAX_TIME_CHARS = 64

_DIGITS = re.compile(r"^[0-9]+$")
# Epoch seconds or milliseconds. At most 14 digits (milliseconds up to the year 5138), so every
# number this accepts is a time a datetime can hold; /openapi.json publishes the same pattern.
EPOCH_PATTERN = r"^[0-9]{1,14}(\.[0-9]{1,9})?$"
_EPOCH_RE = re.compile(EPOCH_PATTERN)
_LONG_NUMBER = re.compile(r"^[0-9]{15,}(\.[0-9]*)?$")
# A '+' in a query string arrives as a space when the client did not encode it.
_SPACED_OFFSET = re.compile(r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
# Epoch numbers at or above this are milliseconds (1e11 seconds is the year 5138).
_MS_THRESHOLD = 100_000_000_000
# The instants a datetime can hold. An ISO time at an edge (0001-01-01T00:00:00+14:00, or a range
# that runs past 9999-12-31) is clamped to them: nothing was recorded there either way.
EARLIEST = dt.datetime.min.replace(tzinfo=UTC)
LATEST = dt.datetime.max.replace(tzinfo=UTC)


# -- symbols and exchanges --------------------------------------------------------------

def parse_symbol(raw: str | None) -> str:
    """An upper-cased contract symbol such as ESZ6; BadRequest explaining the grammar otherwise."""
    try:
        return normalize_symbol(raw if raw is not None else "")
    except SymbolError as exc:
        raise BadRequest(str(exc), title="Invalid symbol") from None


def parse_data_symbol(raw: str | None) -> str:
    """A contract symbol (ESZ6) or a continuous symbol (ES.c.0), normalised; BadRequest otherwise."""
    text = raw if raw is not None else ""
    if looks_continuous(text):
        try:
            return parse_continuous(text).symbol
        except SymbolError as exc:
            raise BadRequest(str(exc), title="Invalid symbol") from None
    try:
        return normalize_symbol(text)
    except SymbolError as exc:
        raise BadRequest(f"{exc}, or a continuous symbol such as ES.c.0 (the front month at each instant)",
                         title="Invalid symbol") from None


def parse_product(raw: str | None) -> str:
    """A catalogue product code such as ES (case-insensitive); BadRequest naming the catalogue otherwise."""
    text = (raw or "").strip().upper()
    if not is_product_code(text):
        raise BadRequest(f"'{(raw or '')[:32]}' is not a product of the catalogue: use one of "
                         f"{', '.join(sorted(PRODUCTS))}", title="Unknown product")
    return text


def parse_subscription_symbol(raw: str | None) -> tuple[str, str]:
    """(symbol, kind) of a subscribe/unsubscribe path: a contract (ESZ6, kind 'contract') or a catalogue
    product followed as its front month (ES, kind 'product'). Continuous symbols are read-only."""
    text = (raw or "").strip()
    if looks_continuous(text):
        code = text.split(".")[0].upper()
        raise BadRequest(f"{text[:32]} is a continuous symbol, served from the contracts recorded; to record "
                         f"{code}'s front month as it rolls, subscribe {code}", title="Invalid symbol")
    if is_product_code(text):
        return text.upper(), "product"
    try:
        return normalize_symbol(text), "contract"
    except SymbolError as exc:
        raise BadRequest(f"{exc}; or a catalogue product code such as ES to follow its front month",
                         title="Invalid symbol") from None


def subscription_exchange(symbol: str, requested: str | None) -> str:
    """The exchange to subscribe `symbol` on: the one asked for, checked against the catalogue,
    or the catalogue's. An unknown product must name its exchange. `symbol` is a contract or a
    catalogue product code."""
    code = symbol if symbol in PRODUCTS else split_symbol(symbol)[0]
    product = PRODUCTS.get(code)
    if product is not None and code != symbol:
        try:
            check_month(symbol)  # rejects a month the product does not list
        except SymbolError as exc:
            raise BadRequest(f"{symbol}: {exc}", title="Invalid symbol") from None
    if requested is None:
        try:
            return infer_exchange(symbol)
        except SymbolError as exc:
            raise BadRequest(f"{exc}; send a JSON body such as {{\"exchange\": \"CME\"}}",
                             title="Exchange required") from None
    if product is not None and requested != product.exchange:
        raise BadRequest(f"{product.name} ({code}) trades on {product.exchange}, not {requested}; "
                         f"leave the exchange out or send {product.exchange}", title="Invalid exchange")
    return requested


def parse_subscription_body(raw: bytes | str | None) -> str | None:
    """The optional `{"exchange": "COMEX"}` body of subscribe/unsubscribe; None when absent."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the body must be UTF-8 JSON such as {\"exchange\": \"COMEX\"}",
                             title="Invalid body") from None
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON: send {\"exchange\": \"COMEX\"} or no body at all",
                         title="Invalid body") from None
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object such as {\"exchange\": \"COMEX\"}", title="Invalid body")
    unknown = sorted(k for k in body if k != "exchange")
    if unknown:
        shown = ", ".join(repr(k[:32]) for k in unknown[:5])
        raise BadRequest(f"unknown field(s) {shown}: the only field accepted is \"exchange\"", title="Invalid body")
    exchange = body.get("exchange")
    if exchange is None:
        return None
    if not isinstance(exchange, str):
        raise BadRequest("\"exchange\" must be a string such as \"COMEX\"", title="Invalid body")
    try:
        return normalize_exchange(exchange)
    except SymbolError as exc:
        raise BadRequest(str(exc), title="Invalid exchange") from None


# -- numbers and choices ----------------------------------------------------------------

def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """A positive whole number; values above `maximum` are capped (and echoed as applied)."""
    if raw is None:
        return default
    text = raw.strip()
    if not _DIGITS.match(text) or int(text) == 0:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum} (larger values are capped to "
                         f"{maximum}), not {raw[:32]!r}", title="Invalid limit")
    return min(int(text), maximum)


def parse_depth(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_DEPTH
    text = raw.strip()
    if not _DIGITS.match(text) or int(text) == 0:
        raise BadRequest(f"depth must be a whole number of price levels from 1 to {MAX_DEPTH} (larger values "
                         f"are capped), not {raw[:32]!r}", title="Invalid depth")
    return min(int(text), MAX_DEPTH)


def parse_order(raw: str | None) -> str:
    if raw is None:
        return "desc"
    value = raw.strip().lower()
    if value not in ORDERS:
        raise BadRequest(f"order must be asc (oldest first) or desc (newest first), not {raw[:32]!r}",
                         title="Invalid order")
    return value


def parse_interval(raw: str | None) -> tuple[str, dt.timedelta]:
    """A bar width; 1m when left out."""
    value = "1m" if raw is None else raw.strip().lower()
    if value not in INTERVALS:
        raise BadRequest(f"interval must be one of {', '.join(INTERVALS)}, not {raw[:32]!r}",
                         title="Invalid interval")
    return value, INTERVALS[value]


# -- times and ranges -------------------------------------------------------------------

def parse_time(raw: str, name: str) -> dt.datetime:
    """ISO-8601 with a UTC offset, or epoch seconds, or epoch milliseconds (13 digits)."""
    allowed = (f"{name} must be an ISO-8601 time with a UTC offset (2026-11-24T14:30:00Z or "
               f"2026-11-24T14:30:00+00:00), or epoch seconds (1795530600), or epoch milliseconds "
               f"(1795530600000)")
    text = raw.strip()
    if not text or len(text) > _MAX_TIME_CHARS:
        raise BadRequest(allowed, title="Invalid time")
    if _LONG_NUMBER.match(text):
        raise BadRequest(allowed + f"; {raw[:32]!r} is out of range (epoch milliseconds have 13 digits; "
                         f"microseconds and nanoseconds are not accepted)", title="Invalid time")
    if _EPOCH_RE.match(text):
        value = float(text) if "." in text else int(text)
        if value >= _MS_THRESHOLD:
            ms = int(text.split(".")[0])
            return EPOCH + dt.timedelta(milliseconds=ms)
        if isinstance(value, int):
            return EPOCH + dt.timedelta(seconds=value)
        whole, frac = text.split(".")
        return EPOCH + dt.timedelta(seconds=int(whole), microseconds=int(frac[:6].ljust(6, "0")))
    m = _SPACED_OFFSET.match(text)
    if m:
        text = f"{m.group(1)}+{m.group(2)}"
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(allowed + f", not {raw[:32]!r}", title="Invalid time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadRequest(allowed + f"; {raw[:32]!r} has no UTC offset", title="Invalid time")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 with a positive offset, 9999-12-31 with a negative one
        return EARLIEST if value.year == dt.MINYEAR else LATEST


def shift(value: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """value + delta, clamped to the instants a datetime can hold (a range may run past 9999-12-31)."""
    try:
        return value + delta
    except OverflowError:
        return LATEST if delta > dt.timedelta(0) else EARLIEST


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


def resolve_window(start_raw: str | None, end_raw: str | None, max_range: dt.timedelta,
                   what: str = "raw rows") -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) from the query; a missing bound makes the range the longest allowed.

    Neither bound: (None, None), the most recent rows. Only start: [start, start + max).
    Only end: [end - max, end).
    """
    start = parse_time(start_raw, "start") if start_raw is not None else None
    end = parse_time(end_raw, "end") if end_raw is not None else None
    if start is not None and end is not None:
        check_range(start, end, max_range, what)
    elif start is not None:
        end = shift(start, max_range)
    elif end is not None:
        start = shift(end, -max_range)
    return start, end


def check_range(start: dt.datetime, end: dt.datetime, max_range: dt.timedelta, what: str) -> None:
    if start >= end:
        raise BadRequest(f"start ({iso(start)}) must be before end ({iso(end)}): start is inclusive, "
                         f"end exclusive", title="Invalid range")
    if end - start > max_range:
        raise BadRequest(f"start to end spans more than {_span(max_range)}, the longest range served for "
                         f"{what}; ask for a shorter range (several requests if need be)",
                         title="Range too long")


def bars_window(start_raw: str | None, end_raw: str | None, interval_name: str, interval: dt.timedelta,
                max_range: dt.timedelta, max_daily_range: dt.timedelta,
                now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a bars request: end defaults to now, start to the last 1000 buckets."""
    if interval_name == "1d":
        longest, what = max_daily_range, "1d bars"
    else:
        longest = min(max_range, interval * MAX_BARS_BUCKETS)
        what = f"{interval_name} bars"
    start = parse_time(start_raw, "start") if start_raw is not None else None
    end = parse_time(end_raw, "end") if end_raw is not None else None
    if start is not None and end is not None:
        check_range(start, end, longest, what)
        return start, end
    # A bound worked out here is never further than `longest` from the given one (it may be empty
    # at the very end of time, where a clamped start leaves no room).
    if end is None:
        end = now if start is None else min(now, shift(start, longest))
        if start is not None and end <= start:
            end = shift(start, longest)
    if start is None:
        start = shift(end, -min(longest, interval * DEFAULT_BARS_BUCKETS))
    return start, end


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def to_epoch_us(value: dt.datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


# -- cursors ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the (timestamp, id) of its last row, and the query it belongs to."""

    kind: str
    symbol: str
    order: str
    ts: dt.datetime
    id: int
    start: dt.datetime | None
    end: dt.datetime | None


def encode_cursor(c: Cursor) -> str:
    payload = [CURSOR_VERSION, c.kind, c.symbol, c.order, to_epoch_us(c.ts), c.id,
               to_epoch_us(c.start) if c.start else None, to_epoch_us(c.end) if c.end else None]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_BAD_CURSOR = "cursor is not one this API issued: pass next_cursor from the previous response unchanged"
_I64 = (-(1 << 63), (1 << 63) - 1)
# Microseconds from the epoch of 0001-01-01 and 9999-12-31T23:59:59.999999, the range a datetime can hold.
_US_RANGE = (-62135596800 * 1_000_000, 253402300799 * 1_000_000 + 999_999)


def decode_cursor(raw: str) -> Cursor:
    text = raw.strip()
    if not text or len(text) > _MAX_CURSOR_CHARS:
        raise BadRequest(_BAD_CURSOR, title="Invalid cursor")
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise BadRequest(_BAD_CURSOR, title="Invalid cursor") from None

    def is_int(v, lo, hi) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    def is_us(v, nullable=False) -> bool:
        return (nullable and v is None) or is_int(v, *_US_RANGE)

    if not (isinstance(payload, list) and len(payload) == 8 and payload[0] == CURSOR_VERSION
            and isinstance(payload[1], str) and isinstance(payload[2], str) and payload[3] in ORDERS
            and is_us(payload[4]) and is_int(payload[5], *_I64)
            and is_us(payload[6], True) and is_us(payload[7], True)):
        raise BadRequest(_BAD_CURSOR, title="Invalid cursor")
    _, kind, symbol, order, ts, row_id, start, end = payload
    return Cursor(kind, symbol, order, from_epoch_us(ts), row_id,
                  from_epoch_us(start) if start is not None else None,
                  from_epoch_us(end) if end is not None else None)


@dataclass(frozen=True)
class PageRequest:
    limit: int
    order: str
    start: dt.datetime | None
    end: dt.datetime | None
    after: tuple[dt.datetime, int] | None  # continue strictly after this (timestamp, id)


def page_request(query: Mapping[str, str], *, kind: str, symbol: str, default_limit: int, max_limit: int,
                 max_range: dt.timedelta) -> PageRequest:
    """limit, order, [start, end) and cursor of a raw-rows request, checked against each other."""
    limit = parse_limit(query.get("limit"), default_limit, max_limit)
    cursor_raw = query.get("cursor")
    if cursor_raw is None:
        order = parse_order(query.get("order"))
        start, end = resolve_window(query.get("start"), query.get("end"), max_range)
        return PageRequest(limit, order, start, end, None)
    c = decode_cursor(cursor_raw)
    if c.kind != kind or c.symbol != symbol:
        raise BadRequest(f"this cursor continues {c.kind[:16]} of {c.symbol[:16]}, not {kind} of {symbol}",
                         title="Invalid cursor")
    if query.get("order") is not None and parse_order(query.get("order")) != c.order:
        raise BadRequest("order differs from the query this cursor continues; leave it out or keep it the same",
                         title="Invalid cursor")
    if query.get("start") is not None or query.get("end") is not None:
        start, end = resolve_window(query.get("start"), query.get("end"), max_range)
        if (start, end) != (c.start, c.end):
            raise BadRequest("start/end differ from the query this cursor continues; leave them out or keep "
                             "them the same", title="Invalid cursor")
    return PageRequest(limit, c.order, c.start, c.end, (c.ts, c.id))
