"""What the trading calendar (rdc_common.calendar) means for the collector: whether silence from a
symbol is expected, whether an outage can have lost anything, how fast to reconnect while every
market is closed, and the per-symbol market status the heartbeat reports.

Pure functions of (symbols, instants); the gap manager, the watchdog and the heartbeat call them at
their own pace (a few times a second at most), never per message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rdc_common.calendar import MarketHours, hours
from rdc_common.clock import Clock
from rdc_common.products import PRODUCTS, SymbolError, split_symbol

UTC = dt.UTC
# While every subscribed market is closed, at most one reconnect attempt per this much clock time.
CLOSED_RECONNECT_EVERY_S = 300.0
# ...but the last attempt before an open lands at least this much clock time before it, so the
# session is logged in and subscribed when the first trade comes.
PRE_OPEN_S = 60.0
MIN_RECONNECT_FLOOR_S = 1.0  # real seconds: never hammer the gateway, whatever the clock's speed


def product_code(symbol: str) -> str | None:
    """The catalogue product of a contract (ESZ6 -> ES) or product code (ES); None when unknown."""
    if symbol in PRODUCTS:
        return symbol
    try:
        code = split_symbol(symbol)[0]
    except SymbolError:
        return None
    return code if code in PRODUCTS else None


def hours_of(symbol: str) -> MarketHours | None:
    """The trading hours of a symbol's product; None for a product the catalogue lacks (the
    collector then treats it as always open: every silence counts and every outage is a gap)."""
    code = product_code(symbol)
    return hours(code) if code is not None else None


def open_seconds(symbol: str, start: float, end: float) -> float:
    """How much of [start, end) the symbol's market was open (all of it when its hours are unknown)."""
    if end <= start:
        return 0.0
    h = hours_of(symbol)
    if h is None:
        return end - start
    return sum(hi - lo for lo, hi in h.open_intervals(start, end))


def lost_nothing(symbol: str, start: float, end: float) -> bool:
    """True when the symbol's market was closed for all of [start, end): an outage there cannot
    have missed a trade, a quote or a book change, so it is no gap."""
    return open_seconds(symbol, start, end) == 0.0


def opened_at(h: MarketHours, t: float) -> float | None:
    """The start of the open interval `t` is in (t must be open): the first open after the last close."""
    close = h.prev_close(t)
    return h.next_open(close) if close is not None else None


@dataclass(frozen=True)
class WatchState:
    """The subscribed symbols' markets at one instant, as the stall watchdog needs them."""

    open_symbols: int  # symbols whose market is open (unknown hours count as open)
    opened_at: float | None  # the latest start of an open interval among the open symbols
    next_open: float | None  # when none is open: the earliest next open among them

    @property
    def all_closed(self) -> bool:
        return self.open_symbols == 0


def watch_state(symbols, t: float) -> WatchState:
    n_open, latest_open, next_open = 0, None, None
    for symbol in symbols:
        h = hours_of(symbol)
        if h is None:
            n_open += 1
            continue
        if h.is_open(t):
            n_open += 1
            start = opened_at(h, t)
            if start is not None and (latest_open is None or start > latest_open):
                latest_open = start
        else:
            nxt = h.next_open(t)
            if nxt is not None and (next_open is None or nxt < next_open):
                next_open = nxt
    return WatchState(n_open, latest_open, None if n_open else next_open)


def closed_reconnect_floor(state: WatchState, clock: Clock, t: float) -> float:
    """Real seconds a reconnect attempt must wait while every subscribed market is closed: one
    attempt per CLOSED_RECONNECT_EVERY_S of clock time, but none later than PRE_OPEN_S before the
    next open, and never less than MIN_RECONNECT_FLOOR_S of real time. 0 while something is open."""
    if not state.all_closed:
        return 0.0
    wait = CLOSED_RECONNECT_EVERY_S
    if state.next_open is not None:
        wait = min(wait, max(0.0, state.next_open - PRE_OPEN_S - t))
    return max(MIN_RECONNECT_FLOOR_S, clock.real_seconds(wait))


def iso(t: float | None) -> str | None:
    return dt.datetime.fromtimestamp(t, UTC).isoformat() if t is not None else None


def market_json(symbol: str, t: float) -> dict:
    """MarketState.as_json() of the symbol's market at `t` (market null when its hours are unknown)."""
    h = hours_of(symbol)
    if h is None:
        return {"market": None, "trade_date": None, "next_open": None, "next_close": None}
    return h.state(t).as_json()
