"""The fast path from a raw ticker-plant frame to a buffered row, and what it observes on
the way: message count, the recent trades per symbol, subscription answers, gaps."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque

from rdc_common.clock import LiveClock

from .parsing import (
    LEVEL2,
    QUOTE,
    T_BBO,
    T_LAST_TRADE,
    T_MARKET_DATA_RESPONSE,
    T_ORDER_BOOK,
    TICK,
    FrameError,
    QuoteBook,
    decode_book,
    decode_market_data_response,
    decode_trade,
    split_frame,
)

log = logging.getLogger("collector.ingest")
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_US = dt.timedelta(microseconds=1)
T_FORCED_LOGOUT = 77
_SNAPSHOT = "SNAPSHOT_IMAGE"
# Trades kept per symbol for the heartbeat's latency figures and a gap's boundary: at the busiest
# simulated pace (about 7,000 trades/s a symbol) that is the last half second.
RECENT_TRADES = 4096


class Ingest:
    """The collector's FrameSink (see rithmic_internals.install_fast_path)."""

    def __init__(self, writer, on_disconnect=None, on_forced_logout=None, on_first_trade=None, clock=None,
                 live=None):
        self.writer = writer
        # live.MarketState (the console's live snapshots) or None (LIVE_SNAPSHOTS=0): fed one cheap
        # call per accepted row.
        self.live = live
        self.clock = clock or LiveClock()
        self.now = self.clock.now_dt  # receive stamps: the collector's clock
        self._add_tick = writer.appender(TICK)
        self._add_quote = writer.appender(QUOTE)
        self._add_level2 = writer.appender(LEVEL2)
        self.quotes = QuoteBook()
        self._on_disconnect = on_disconnect
        self._on_forced_logout = on_forced_logout
        self._on_first_trade = on_first_trade  # (row) of a symbol's first trade after an outage
        self.messages = 0  # market-data messages taken (the watchdog and the rate read it)
        self.malformed = 0
        self.book_untrusted_dropped = 0
        self.last_message_at: dt.datetime | None = None
        self.last_read_at: dt.datetime | None = None  # anything at all on the socket (FrameReader sets it)
        # The latest trade rows per symbol, oldest first. Appending a reference is all the hot
        # path pays; the heartbeat and the gap bookkeeping read them at their own pace.
        self.recent_trades: dict[str, deque] = {}
        self.awaiting_first_trade: set[str] = set()
        self.untrusted_books: set[str] = set()
        self.pending_answers: dict[str, asyncio.Future] = {}

    # the FrameSink protocol -----------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self.writer.full

    async def wait_for_space(self) -> None:
        await self.writer.wait_for_space()

    def handle(self, frame: bytes, received: dt.datetime | None = None) -> bool:
        """Take one frame; False hands it on to async_rithmic. `received` is when its TCP read
        arrived (the reader stamps a whole read at once); now when not given.

        Runs for every message, so: branches in order of frequency (book, quote, trade) and
        no per-message bookkeeping beyond a counter (and, per trade, one append to its ring)."""
        try:
            tid, payload = split_frame(frame)
        except FrameError as exc:
            self.malformed += 1
            log.warning("malformed frame skipped", extra={"fields": {"error": str(exc), "bytes": len(frame)}})
            return True
        if received is None:
            received = self.now()
        try:
            if tid == T_ORDER_BOOK:
                row = decode_book(payload, received)
                if self.untrusted_books and row[1] in self.untrusted_books:
                    # After an outage the book is rebuilt from the next snapshot only.
                    if row[3] != _SNAPSHOT:
                        self.book_untrusted_dropped += 1
                        return True
                    self.untrusted_books.discard(row[1])
                    if self.live is not None:
                        self.live.trusted_again(row[1])
                self._add_level2(row)
                if self.live is not None:
                    self.live.on_book(row)
            elif tid == T_BBO:
                row = self.quotes.decode(payload, received)
                self._add_quote(row)
                if self.live is not None:
                    self.live.on_quote(row[1])
            elif tid == T_LAST_TRADE:
                row = decode_trade(payload, received)
                if row is not None:
                    symbol = row[1]
                    self._add_tick(row)
                    recent = self.recent_trades.get(symbol)
                    if recent is None:
                        recent = self.recent_trades[symbol] = deque(maxlen=RECENT_TRADES)
                    recent.append(row)
                    if self.live is not None:
                        self.live.on_trade(row)
                    if self.awaiting_first_trade and symbol in self.awaiting_first_trade:
                        self.awaiting_first_trade.discard(symbol)
                        if self._on_first_trade is not None:
                            self._on_first_trade(row)
            elif tid == T_MARKET_DATA_RESPONSE:
                self._answer(payload)
                return True
            else:
                if tid == T_FORCED_LOGOUT and self._on_forced_logout is not None:
                    self._on_forced_logout()
                return False
        except Exception as exc:  # a frame whose body does not parse as its template says
            self.malformed += 1
            log.warning("undecodable market-data frame skipped",
                        extra={"fields": {"template_id": tid, "error": f"{type(exc).__name__}: {exc}"[:200]}})
            return True
        self.messages += 1
        self.last_message_at = received
        return True

    def on_connection_lost(self, exc) -> None:
        if self._on_disconnect is not None:
            self._on_disconnect("disconnect")

    # Subscription answers ----------------------------------------------------------
    def expect_answer(self, tag: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pending_answers[tag] = fut
        return fut

    def _answer(self, payload: bytes) -> None:
        user_msg, rp_code = decode_market_data_response(payload)
        for tag in user_msg:
            fut = self.pending_answers.pop(tag, None)
            if fut is not None and not fut.done():
                fut.set_result(rp_code)
                return
        if rp_code and rp_code[0] != "0":
            # An answer to the library's own resubscription after a reconnect.
            log.warning("gateway refused a market-data request", extra={"fields": {"rp_code": rp_code}})

    # Outages ------------------------------------------------------------------------
    def last_trade(self, symbol: str) -> tuple[dt.datetime, int] | None:
        """(timestamp, how many trades received with exactly that timestamp) of the symbol's
        latest trade, or None when none was received: where a gap starts."""
        recent = self.recent_trades.get(symbol)
        if not recent:
            return None
        ts = recent[-1][0]
        held = 0
        for row in reversed(recent):
            if row[0] != ts:
                break
            held += 1
        return ts, held

    def mark_outage(self, symbols) -> None:
        """After a lost connection: the next trade closes each symbol's gap, the next
        snapshot re-trusts its book."""
        symbols = list(symbols)
        for s in symbols:
            self.awaiting_first_trade.add(s)
            self.untrusted_books.add(s)
            self.quotes.forget(s)
        if self.live is not None:
            self.live.mark_outage(symbols)


def latency_summary(recent: dict[str, deque], since: dict[str, dt.datetime]) -> dict[str, dict]:
    """Exchange-to-collector latency (received_at - the trade's exchange time) per symbol, over
    the trades received after ``since[symbol]`` (at most the last RECENT_TRADES): ``{symbol:
    {"p50_ms", "p99_ms", "samples", "as_of"}}``, ``as_of`` the newest of them's received_at.
    Advances ``since`` to it; a symbol with no trade since is left out.

    Runs in the heartbeat, never per message. Exact to the nanosecond where the trade carries
    nanoseconds (``received_at`` has microseconds, as the clock that stamps it).
    """
    out: dict[str, dict] = {}
    for symbol, rows in recent.items():
        after = since.get(symbol)
        lat: list[int] = []
        last_received, received_ns = None, 0
        for row in reversed(rows):
            received = row[7]
            if after is not None and received <= after:
                break
            if received is not last_received:  # one TCP read's trades share one received_at
                last_received, received_ns = received, (received - _EPOCH) // _US * 1000
            exchange_ns = row[9] if row[9] is not None else (row[0] - _EPOCH) // _US * 1000
            lat.append(received_ns - exchange_ns)
        if not lat:
            continue
        since[symbol] = newest = rows[-1][7]
        lat.sort()
        n = len(lat)
        out[symbol] = {"p50_ms": lat[(n - 1) // 2] / 1e6, "p99_ms": lat[min(n - 1, -(-99 * n // 100) - 1)] / 1e6,
                       "samples": n, "as_of": newest}
    return out
