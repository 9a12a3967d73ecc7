"""The API's one query layer: rows of a table for a symbol in [start, end) after a cursor, bars, the
order book at an instant, gaps and rolls. Routes ask this module and never see SQL or tiers.

A symbol is a contract (ESZ6) or a continuous symbol (ES.c.0). A continuous symbol is read as
per-contract segments split at the roll instants (chalicelib.continuous): each segment is read like a
contract, and since segments are disjoint in time, reading them in turn gives (timestamp, id) order
overall, so a (timestamp, id) cursor continues across a roll exactly, in both orders. Rows keep
their real contract symbol; no price is adjusted.

A continuous symbol is resolved only over the part of a request where the product's contracts have
rows (first to last, from the counters the writer maintains with them): instants without data cost
no calendar lookup, and an unbounded request has a finite set of segments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from rdc_common.products import MONTH_CODES, Continuous, Product, looks_continuous, parse_continuous

from . import continuous, params, queries
from .continuous import Segment
from .db import get_db

UTC = dt.UTC
NEG_INF = dt.datetime.min.replace(tzinfo=UTC)  # sent to PostgreSQL as -infinity
POS_INF = dt.datetime.max.replace(tzinfo=UTC)  # and infinity
_US = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Table:
    name: str
    asc_sql: str
    desc_sql: str


TABLES = {
    "ticks": Table("tick_data", queries.TICKS_ASC, queries.TICKS_DESC),
    "quotes": Table("quote_data", queries.QUOTES_ASC, queries.QUOTES_DESC),
    "level2": Table("level2_data", queries.LEVEL2_ASC, queries.LEVEL2_DESC),
}


def is_continuous(symbol: str) -> bool:
    return looks_continuous(symbol)


def _contract_symbols(product: Product) -> list[str]:
    """Every symbol a contract of `product` can have (its months, any one-digit year)."""
    return [f"{product.code}{m}{d}" for m in MONTH_CODES if m in product.months for d in range(10)]


@dataclass(frozen=True)
class _Extents:
    """First and last row time per contract symbol that has rows."""

    spans: dict[str, tuple[dt.datetime, dt.datetime]]

    def clip(self, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime, dt.datetime] | None:
        """[start, end) narrowed to [first row, last row]; None when nothing is left."""
        if not self.spans:
            return None
        lo = max(start or NEG_INF, min(f for f, _ in self.spans.values()))
        hi = min(end or POS_INF, max(last for _, last in self.spans.values()) + _US)
        return (lo, hi) if lo < hi else None

    def holds(self, seg: Segment) -> bool:
        span = self.spans.get(seg.symbol)
        return span is not None and span[0] < seg.end and span[1] >= seg.start


def _extents(table: str, product: Product) -> _Extents:
    rows = get_db().fetch(queries.EXTENTS, table, _contract_symbols(product))
    return _Extents({r["symbol"]: (r["first_ts"], r["last_ts"]) for r in rows})


def segments_with_rows(table: str, cont: Continuous, start: dt.datetime | None,
                       end: dt.datetime | None) -> list[Segment]:
    """The segments of `cont` in [start, end) whose contract has rows of `table` there."""
    extents = _extents(table, cont.product)
    window = extents.clip(start, end)
    if window is None:
        return []
    return [s for s in continuous.segments(cont, *window) if extents.holds(s)]


# -- raw rows -------------------------------------------------------------------------------

def rows(kind: str, symbol: str, start: dt.datetime | None, end: dt.datetime | None,
         after: tuple[dt.datetime, int] | None, order: str, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` rows of `kind` (ticks, quotes, level2) for `symbol` in [start, end) (None: unbounded),
    in (timestamp, id) order `order` (asc/desc), strictly after the (timestamp, id) `after`."""
    table = TABLES[kind]
    desc = order == "desc"
    sql = table.desc_sql if desc else table.asc_sql
    after_ts, after_id = after or ((POS_INF, 0) if desc else (NEG_INF, 0))
    if not is_continuous(symbol):
        return get_db().fetch(sql, symbol, start or NEG_INF, end or POS_INF, after_ts, after_id, limit)

    # Nothing on the far side of the cursor can follow it: resolve only the rest of the range.
    if after is not None and desc:
        end = min(end or POS_INF, params.shift(after_ts, _US))
    elif after is not None:
        start = max(start or NEG_INF, after_ts)
    segs = segments_with_rows(table.name, parse_continuous(symbol), start, end)
    if desc:
        segs.reverse()

    async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        out: list[asyncpg.Record] = []
        for seg in segs:
            out += await conn.fetch(sql, seg.symbol, seg.start, seg.end, after_ts, after_id, limit - len(out))
            if len(out) >= limit:
                break
        return out

    return get_db().run(work) if segs else []


# -- bars -----------------------------------------------------------------------------------

def bars(symbol: str, width: dt.timedelta, start: dt.datetime, end: dt.datetime
         ) -> tuple[list[asyncpg.Record], list[Segment]]:
    """OHLCV buckets of `width` over [start, end), and the contracts whose trades they aggregate.

    For a continuous symbol each trade counts toward its bucket when its contract was the one
    served at the trade's instant, so a bucket that spans a roll opens on the old contract and
    closes on the new one."""
    if not is_continuous(symbol):
        return get_db().fetch(queries.BARS, symbol, width, start, end), [Segment(symbol, start, end)]
    segs = segments_with_rows("tick_data", parse_continuous(symbol), start, end)
    if not segs:
        return [], []
    records = get_db().fetch(queries.BARS_SEGMENTS, [s.symbol for s in segs], [s.start for s in segs],
                             [s.end for s in segs], width)
    return records, segs


# -- the order book -------------------------------------------------------------------------

@dataclass(frozen=True)
class BookRows:
    contract: str | None  # the contract whose book this is (None: a continuous symbol with no data then)
    snapshot_at: dt.datetime | None  # None: no snapshot within the lookback
    rows: list[asyncpg.Record]


def book(symbol: str, at: dt.datetime, lookback: dt.datetime) -> BookRows:
    """The stored OrderBook messages that rebuild `symbol`'s book at `at`: the latest snapshot at or
    after `lookback` and at or before `at`, then every message up to `at`. A continuous symbol's book
    is that of the contract it stands for at `at`."""
    contract = symbol
    if is_continuous(symbol):
        cont = parse_continuous(symbol)
        if _extents("level2_data", cont.product).clip(lookback, params.shift(at, _US)) is None:
            return BookRows(None, None, [])  # no message of any of its contracts in the window
        contract = continuous.contract_at(cont, at).symbol

    async def load(conn: asyncpg.Connection) -> BookRows:
        snapshot_at = await conn.fetchval(queries.BOOK_SNAPSHOT_TIME, contract, at, lookback)
        if snapshot_at is None:
            return BookRows(contract, None, [])
        return BookRows(contract, snapshot_at, await conn.fetch(queries.BOOK_ROWS, contract, snapshot_at, at))

    return get_db().run(load)


# -- gaps -----------------------------------------------------------------------------------

def gaps(symbol: str, start: dt.datetime, end: dt.datetime, limit: int, now: dt.datetime
         ) -> list[tuple[str, asyncpg.Record]]:
    """(contract, gap) of the recorded outages overlapping [start, end), oldest first; for a
    continuous symbol, each contract's gaps within the span it is served."""
    if not is_continuous(symbol):
        return [(symbol, r) for r in get_db().fetch(queries.GAPS_OVERLAPPING, symbol, start, end, limit)]
    cont = parse_continuous(symbol)
    extent = get_db().fetchrow(queries.GAPS_EXTENT, _contract_symbols(cont.product), now)
    if extent is None or extent["first"] is None:
        return []
    lo, hi = max(start, extent["first"]), min(end, extent["last"] + _US)
    if lo >= hi:
        return []
    segs = continuous.segments(cont, lo, hi)

    async def work(conn: asyncpg.Connection) -> list[tuple[str, asyncpg.Record]]:
        out = []
        for seg in segs:
            out += [(seg.symbol, r) for r in await conn.fetch(queries.GAPS_OVERLAPPING, seg.symbol, seg.start,
                                                              seg.end, limit)]
        return out

    found = get_db().run(work)
    found.sort(key=lambda item: item[1]["gap_start"])
    return found[:limit]


# -- rolls ----------------------------------------------------------------------------------

def rolls(product: str) -> list[asyncpg.Record]:
    """The rolls the collector recorded for `product`, oldest first."""
    return get_db().fetch(queries.ROLLS, product)
