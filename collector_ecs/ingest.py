"""The fast path from a raw ticker-plant frame to a buffered row, and what it observes on
the way: per-symbol counts, the last exchange time seen, subscription answers, gaps."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict

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
    template_id,
)

log = logging.getLogger("collector.ingest")
_now = dt.datetime.now
UTC = dt.UTC
T_FORCED_LOGOUT = 77
_SNAPSHOT = "SNAPSHOT_IMAGE"


class Ingest:
    """The collector's FrameSink (see rithmic_internals.install_fast_path)."""

    def __init__(self, writer, on_disconnect=None, on_forced_logout=None, on_first_trade=None):
        self.writer = writer
        self._add_tick = writer.appender(TICK)
        self._add_quote = writer.appender(QUOTE)
        self._add_level2 = writer.appender(LEVEL2)
        self.quotes = QuoteBook()
        self._on_disconnect = on_disconnect
        self._on_forced_logout = on_forced_logout
        self._on_first_trade = on_first_trade  # (symbol, exchange, ts) after an outage
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: {TICK: 0, QUOTE: 0, LEVEL2: 0})
        self.messages = 0
        self.malformed = 0
        self.unknown = 0
        self.book_untrusted_dropped = 0
        self.last_message_at: dt.datetime | None = None
        self.last_market_data_monotonic = time.monotonic()
        self.last_trade_ts: dict[str, dt.datetime] = {}
        self.awaiting_first_trade: set[str] = set()
        self.untrusted_books: set[str] = set()
        self.pending_answers: dict[str, asyncio.Future] = {}

    # the FrameSink protocol -----------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self.writer.full

    async def wait_for_space(self) -> None:
        await self.writer.wait_for_space()

    def handle(self, frame: bytes) -> bool:
        try:
            tid = template_id(frame)
        except FrameError as exc:
            self.malformed += 1
            log.warning("malformed frame skipped", extra={"fields": {"error": str(exc), "bytes": len(frame)}})
            return True
        received = _now(UTC)
        try:
            if tid == T_BBO:
                row = self.quotes.decode(frame[4:], received)
                self._add_quote(row)
                self.counts[row[1]][QUOTE] += 1
            elif tid == T_LAST_TRADE:
                row = decode_trade(frame[4:], received)
                if row is not None:
                    symbol = row[1]
                    self._add_tick(row)
                    self.counts[symbol][TICK] += 1
                    self.last_trade_ts[symbol] = row[0]
                    if symbol in self.awaiting_first_trade:
                        self.awaiting_first_trade.discard(symbol)
                        if self._on_first_trade is not None:
                            self._on_first_trade(symbol, row[2], row[0])
            elif tid == T_ORDER_BOOK:
                row = decode_book(frame[4:], received)
                symbol = row[1]
                if symbol in self.untrusted_books:
                    # After an outage the book is rebuilt from the next snapshot only.
                    if row[3] != _SNAPSHOT:
                        self.book_untrusted_dropped += 1
                        return True
                    self.untrusted_books.discard(symbol)
                self._add_level2(row)
                self.counts[symbol][LEVEL2] += 1
            elif tid == T_MARKET_DATA_RESPONSE:
                self._answer(frame)
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
        self.last_market_data_monotonic = time.monotonic()
        return True

    def on_connection_lost(self, exc) -> None:
        if self._on_disconnect is not None:
            self._on_disconnect("disconnect")

    # Subscription answers ----------------------------------------------------------
    def expect_answer(self, tag: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pending_answers[tag] = fut
        return fut

    def _answer(self, frame: bytes) -> None:
        user_msg, rp_code = decode_market_data_response(frame[4:])
        for tag in user_msg:
            fut = self.pending_answers.pop(tag, None)
            if fut is not None and not fut.done():
                fut.set_result(rp_code)
                return
        if rp_code and rp_code[0] != "0":
            # An answer to the library's own resubscription after a reconnect.
            log.warning("gateway refused a market-data request", extra={"fields": {"rp_code": rp_code}})

    # Outages ------------------------------------------------------------------------
    def mark_outage(self, symbols) -> None:
        """After a lost connection: the next trade closes each symbol's gap, the next
        snapshot re-trusts its book."""
        for s in symbols:
            self.awaiting_first_trade.add(s)
            self.untrusted_books.add(s)
            self.quotes.forget(s)
