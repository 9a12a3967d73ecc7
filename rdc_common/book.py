"""One order book rebuilt from Rithmic OrderBook messages (pure): the single implementation used by
the API's `/api/book` (replaying stored rows) and by the collector (applying live rows as they arrive).

Rithmic's semantics: a SNAPSHOT_IMAGE is the whole book (consecutive snapshot messages are parts
of one image), CLEAR_ORDER_BOOK and NO_BOOK empty it, and BEGIN/MIDDLE/END/SOLO each set the
levels they carry, a size or order count of 0 removing the level.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SNAPSHOT = "SNAPSHOT_IMAGE"
CLEARS = frozenset(("CLEAR_ORDER_BOOK", "NO_BOOK"))

Level = tuple[int, "int | None"]  # (size, orders) at a price


def _set(side: dict, prices: Sequence, sizes: Sequence, orders: Sequence) -> None:
    """A snapshot's levels: every level with a size is set."""
    n_sizes, n_orders = len(sizes), len(orders)
    for i, price in enumerate(prices):
        if price is None:
            continue
        size = sizes[i] if i < n_sizes else None
        if size:
            side[price] = (size, orders[i] if i < n_orders else None)


def _update(side: dict, prices: Sequence, sizes: Sequence, orders: Sequence) -> None:
    """An update's levels: a size of 0 (or missing), or an order count of 0, removes the level."""
    n_sizes, n_orders = len(sizes), len(orders)
    for i, price in enumerate(prices):
        if price is None:
            continue
        size = sizes[i] if i < n_sizes else None
        count = orders[i] if i < n_orders else None
        if not size or count == 0:
            side.pop(price, None)
        else:
            side[price] = (size, count)


class OrderBook:
    """The levels of one symbol's book: price -> (size, orders) per side.

    `apply` takes one message's fields as decoded (the collector calls it once per book message,
    so it only touches the levels the message carries); reading the best levels sorts, and is
    meant to be done rarely (a request, a periodic snapshot), never per message.
    """

    __slots__ = ("bids", "asks", "_in_snapshot")

    def __init__(self) -> None:
        self.bids: dict[float, Level] = {}
        self.asks: dict[float, Level] = {}
        self._in_snapshot = False  # the previous message was part of a snapshot image

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._in_snapshot = False

    def apply(self, update_type: str, bid_price: Sequence, bid_size: Sequence, bid_orders: Sequence,
              ask_price: Sequence, ask_size: Sequence, ask_orders: Sequence) -> None:
        """Apply one OrderBook message (levels as parallel arrays, as stored and as decoded).

        The collector calls this for every book message, so the common case (an update of one
        level) is handled inline."""
        if update_type == SNAPSHOT:
            if not self._in_snapshot:
                self.bids.clear()
                self.asks.clear()
                self._in_snapshot = True
            if bid_price:
                _set(self.bids, bid_price, bid_size or (), bid_orders or ())
            if ask_price:
                _set(self.asks, ask_price, ask_size or (), ask_orders or ())
            return
        self._in_snapshot = False
        if update_type in CLEARS:
            self.bids.clear()
            self.asks.clear()
            return
        # Most messages carry one level: set or remove it without a loop or a call.
        if bid_price:
            if len(bid_price) == 1 and len(bid_size) == 1 and bid_price[0] is not None:
                size = bid_size[0]
                count = bid_orders[0] if bid_orders else None
                if size and count != 0:
                    self.bids[bid_price[0]] = (size, count)
                else:
                    self.bids.pop(bid_price[0], None)
            else:
                _update(self.bids, bid_price, bid_size or (), bid_orders or ())
        if ask_price:
            if len(ask_price) == 1 and len(ask_size) == 1 and ask_price[0] is not None:
                size = ask_size[0]
                count = ask_orders[0] if ask_orders else None
                if size and count != 0:
                    self.asks[ask_price[0]] = (size, count)
                else:
                    self.asks.pop(ask_price[0], None)
            else:
                _update(self.asks, ask_price, ask_size or (), ask_orders or ())

    def levels(self, depth: int) -> tuple[list[dict], list[dict]]:
        """Best `depth` levels per side: bids high to low, asks low to high."""
        bids = heapq.nlargest(depth, self.bids.items(), key=lambda kv: kv[0])
        asks = heapq.nsmallest(depth, self.asks.items(), key=lambda kv: kv[0])
        return ([{"price": p, "size": s, "orders": o} for p, (s, o) in bids],
                [{"price": p, "size": s, "orders": o} for p, (s, o) in asks])


@dataclass(frozen=True)
class BookRow:
    """One level2_data row, as stored: levels as parallel arrays."""

    update_type: str
    bid_price: Sequence[float]
    bid_size: Sequence[int]
    bid_orders: Sequence[int]
    ask_price: Sequence[float]
    ask_size: Sequence[int]
    ask_orders: Sequence[int]


def replay(rows: Iterable[BookRow]) -> OrderBook:
    """The book after applying `rows` in order (timestamp, id), starting from nothing."""
    book = OrderBook()
    for r in rows:
        book.apply(r.update_type, r.bid_price or (), r.bid_size or (), r.bid_orders or (), r.ask_price or (),
                   r.ask_size or (), r.ask_orders or ())
    return book
