"""What the web console shows live, kept by the collector: each symbol's order book, its last trades
and best bid/offer, published to Redis as one small JSON document per symbol.

Two halves. `MarketState` is fed from the hot path (ingest.Ingest) and does only O(1) bookkeeping
per message: a book message updates the levels it carries in the symbol's `OrderBook`, and the
symbol is marked changed. The last trades are the ingest's own ring of recent trades (the one the
latency figures are computed from), read here, not copied. `LivePublisher`, a task the
collector's supervisor owns, turns the changed symbols into documents at most every 250 ms and
writes them to Redis (`rdc:live:<SYMBOL>`), where the API's /api/live/<symbol> reads them (locally
and from Lambda through ElastiCache alike). Sorting the book and encoding JSON happen there, off
the hot path.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import json
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rdc_common.book import OrderBook

log = logging.getLogger("collector.live")

KEY_PREFIX = "rdc:live:"
TRADES_KEPT = 50
DEPTH = 10
INTERVAL_S = 0.25
# A symbol no longer recorded (unsubscribed, expired) keeps its last document this long.
KEY_TTL_S = 24 * 3600


def live_key(symbol: str) -> str:
    return KEY_PREFIX + symbol


class SymbolMarket:
    """One symbol's live state: its book (reusable by anything that needs the current book) and
    whether the book can be trusted (not after an outage until the next snapshot)."""

    __slots__ = ("symbol", "exchange", "book", "book_trusted")

    def __init__(self, symbol: str, exchange: str):
        self.symbol = symbol
        self.exchange = exchange
        self.book = OrderBook()
        self.book_trusted = True


class MarketState:
    """Every recorded symbol's SymbolMarket, its recent trades, and which changed since the last
    publication.

    `recent_trades` ({symbol: deque of tick rows, newest last}) is the ingest's ring, shared; without
    one (a MarketState on its own) it keeps its own last TRADES_KEPT per symbol.
    """

    def __init__(self, recent_trades: dict[str, collections.deque] | None = None) -> None:
        self.symbols: dict[str, SymbolMarket] = {}
        self.changed: set[str] = set()
        self._own_trades = recent_trades is None
        self.recent_trades: dict[str, collections.deque] = {} if recent_trades is None else recent_trades

    def _market(self, symbol: str, exchange: str) -> SymbolMarket:
        market = self.symbols.get(symbol)
        if market is None:
            market = self.symbols[symbol] = SymbolMarket(symbol, exchange)
        return market

    # -- the hot path: one call per message, touching only what the message carries --------------
    def on_book(self, row: tuple) -> None:
        """A decoded level2_data row (parsing.decode_book), already accepted by the ingest."""
        symbol = row[1]
        market = self.symbols.get(symbol)
        if market is None:
            market = self._market(symbol, row[2])
        market.book.apply(row[3], row[4], row[5], row[6], row[7], row[8], row[9])
        self.changed.add(symbol)

    def on_trade(self, row: tuple) -> None:
        """A decoded tick_data row (parsing.decode_trade), after the ingest put it in its ring."""
        symbol = row[1]
        if symbol not in self.symbols:
            self._market(symbol, row[2])
        if self._own_trades:
            ring = self.recent_trades.get(symbol)
            if ring is None:
                ring = self.recent_trades[symbol] = collections.deque(maxlen=TRADES_KEPT)
            ring.append(row)
        self.changed.add(symbol)

    def on_quote(self, symbol: str) -> None:
        self.changed.add(symbol)

    # -- outages ------------------------------------------------------------------------------------
    def mark_outage(self, symbols) -> None:
        """After a lost connection the book is rebuilt from the next snapshot only (as stored rows are)."""
        for symbol in symbols:
            market = self.symbols.get(symbol)
            if market is not None:
                market.book.clear()
                market.book_trusted = False
                self.changed.add(symbol)

    def trusted_again(self, symbol: str) -> None:
        """The ingest accepted a snapshot for a symbol whose book it had stopped trusting."""
        market = self.symbols.get(symbol)
        if market is not None:
            market.book_trusted = True

    def take_changed(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat(timespec="microseconds") if t is not None else None


def _trade_json(row: tuple) -> dict:
    return {"timestamp": _iso(row[0]), "price": row[3], "size": row[4], "aggressor": row[5]}


def snapshot(market: SymbolMarket, recent, bbo: list | None, published_at: dt.datetime,
             last_message_at: dt.datetime | None) -> dict:
    """The document published for one symbol (what /api/live/<symbol> answers, less its age);
    `recent`: its trades, newest last."""
    bids, asks = market.book.levels(DEPTH) if market.book_trusted else ([], [])
    # newest first, like /api/ticks
    trades = [_trade_json(r) for r in itertools.islice(reversed(recent or ()), TRADES_KEPT)]
    quote = None
    if bbo is not None:
        quote = {"bid_price": bbo[0], "bid_size": bbo[1], "bid_orders": bbo[2],
                 "ask_price": bbo[3], "ask_size": bbo[4], "ask_orders": bbo[5]}
    return {"symbol": market.symbol, "exchange": market.exchange, "published_at": _iso(published_at),
            "last_message_at": _iso(last_message_at), "last_trade": trades[0] if trades else None,
            "bbo": quote, "book": {"trusted": market.book_trusted, "depth": DEPTH, "bids": bids, "asks": asks},
            "trades": trades}


class LivePublisher:
    """The supervisor's task that writes the changed symbols' documents to Redis every INTERVAL_S."""

    def __init__(self, state: MarketState, quotes, redis_url: str, clock, last_message_at=lambda: None,
                 interval_s: float = INTERVAL_S):
        self.state = state
        self.quotes = quotes  # parsing.QuoteBook: the BBO it already keeps per symbol
        self.redis_url = redis_url
        self.clock = clock
        self.last_message_at = last_message_at
        self.interval_s = interval_s
        self.published = 0
        self._redis: aioredis.Redis | None = None
        self._failing_since: float | None = None

    def documents(self, symbols) -> dict[str, bytes]:
        now = self.clock.now_dt()
        last = self.last_message_at()
        out = {}
        for symbol in symbols:
            market = self.state.symbols.get(symbol)
            if market is not None:
                doc = snapshot(market, self.state.recent_trades.get(symbol), self.quotes.bbo(symbol), now, last)
                out[live_key(symbol)] = json.dumps(doc, separators=(",", ":")).encode()
        return out

    async def publish_once(self) -> int:
        """Write the documents of the symbols changed since the last call; returns how many."""
        changed = self.state.take_changed()
        if not changed:
            return 0
        docs = self.documents(changed)
        if self._redis is None:
            self._redis = aioredis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in docs.items():
                    pipe.set(key, value, ex=KEY_TTL_S)
                await pipe.execute()
        except (RedisError, OSError):
            self.state.changed |= changed  # published again once Redis answers
            raise
        self.published += len(docs)
        return len(docs)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.publish_once()
                if self._failing_since is not None:
                    log.info("live snapshots published again")
                    self._failing_since = None
            except (RedisError, OSError) as exc:
                await self._drop()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("redis unavailable; live snapshots paused (recording goes on)",
                                extra={"fields": {"error": str(exc)[:200]}})
            wait = self.interval_s - (time.monotonic() - started)
            if self._failing_since is not None:
                wait = max(wait, 2.0)
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.01))
            except TimeoutError:
                pass
        await self._drop()

    async def _drop(self) -> None:
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception:  # closing a broken connection; nothing to recover
                pass
            self._redis = None
