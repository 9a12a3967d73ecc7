"""Rebuilds an order book from stored OrderBook messages (pure; the book route and its tests use it).

Rithmic's semantics: a SNAPSHOT_IMAGE is the whole book (consecutive snapshot rows are parts of
one image), CLEAR_ORDER_BOOK and NO_BOOK empty it, and BEGIN/MIDDLE/END/SOLO each set the levels
they carry, a size or order count of 0 removing the level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SNAPSHOT = "SNAPSHOT_IMAGE"
CLEARS = frozenset(("CLEAR_ORDER_BOOK", "NO_BOOK"))


@dataclass
class Book:
    bids: dict[float, tuple[int, int | None]] = field(default_factory=dict)  # price -> (size, orders)
    asks: dict[float, tuple[int, int | None]] = field(default_factory=dict)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def levels(self, depth: int) -> tuple[list[dict], list[dict]]:
        """Best `depth` levels per side: bids high to low, asks low to high."""
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])[:depth]
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


def _side(prices: Sequence[float], sizes: Sequence[int], orders: Sequence[int]):
    for i, price in enumerate(prices):
        if price is None:
            continue
        size = sizes[i] if i < len(sizes) else None
        count = orders[i] if i < len(orders) else None
        yield price, size, count


def _apply_levels(side: dict, prices, sizes, orders, *, deletes: bool) -> None:
    for price, size, count in _side(prices, sizes, orders):
        if deletes and (not size or count == 0):
            side.pop(price, None)
        elif size:
            side[price] = (size, count)


def apply(book: Book, row: BookRow, previous_was_snapshot: bool) -> bool:
    """Apply one row; returns whether it was a snapshot (the next row needs to know)."""
    kind = row.update_type
    if kind == SNAPSHOT:
        if not previous_was_snapshot:
            book.clear()
        _apply_levels(book.bids, row.bid_price, row.bid_size, row.bid_orders, deletes=False)
        _apply_levels(book.asks, row.ask_price, row.ask_size, row.ask_orders, deletes=False)
        return True
    if kind in CLEARS:
        book.clear()
        return False
    _apply_levels(book.bids, row.bid_price, row.bid_size, row.bid_orders, deletes=True)
    _apply_levels(book.asks, row.ask_price, row.ask_size, row.ask_orders, deletes=True)
    return False


def replay(rows: Iterable[BookRow]) -> Book:
    """The book after applying `rows` in order (timestamp, id), starting from nothing."""
    book = Book()
    was_snapshot = False
    for row in rows:
        was_snapshot = apply(book, row, was_snapshot)
    return book
