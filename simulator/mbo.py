"""Market-by-order depth: the individual orders behind one price level of the synthetic book.

Orders are replayed from the level changes a :class:`~simulator.market.Tape` records. Each
second starts from the same order decomposition of its anchor, and the end of each second
moves the orders there, so a snapshot taken at any instant matches the update stream.
"""

from __future__ import annotations

from simulator.market import (
    ASK,
    BID,
    R_ADD,
    R_DELETE,
    R_NEW,
    R_ROLL,
    R_TRADE,
    ROLL_OFFSET,
    Instrument,
    Market,
    mix64,
)

NEW, CHANGE, DELETE = 1, 2, 3  # DepthByOrder.UpdateType


def sequence_number(second: int, usecs: int) -> int:
    """Strictly increasing per symbol: one event per microsecond at most."""
    return second * 1_000_000 + usecs


class PriceOrders:
    """The orders resting at one price, kept as a FIFO list of [order_id, size, priority]."""

    def __init__(self, market: Market, inst: Instrument, px: int):
        self.market = market
        self.inst = inst
        self.px = px
        self.side: int | None = None
        self.orders: list[list] = []

    def _anchor_orders(self, second: int) -> tuple[int | None, list[list]]:
        anchor = self.market.anchor(self.inst, second)
        for side in (BID, ASK):
            size = anchor.levels(side).get(self.px)
            if size:
                return side, self.market.orders_of_level(self.inst, side, self.px, size)
        return None, []

    def start(self, second: int) -> None:
        self.side, self.orders = self._anchor_orders(second)

    def replay(self, second: int, index: int) -> tuple[int, int]:
        """Orders after the first ``index`` events of ``second``; returns (ssboe, usecs) of that state."""
        self.start(second)
        tape = self.market.tape(self.inst, second)
        tape.ensure(index)
        as_of = (second - 1, ROLL_OFFSET)
        for off, _t, _b, groups in tape.events[:index]:
            if off == ROLL_OFFSET:
                self.roll_to(second + 1)
            else:
                self.apply_event(second, off, groups)
            as_of = (second, off)
        return as_of

    def apply_event(self, second: int, usecs: int, groups) -> list[tuple]:
        """Order updates (update_type, side, px, size, priority, order_id) for one tape event."""
        out: list[tuple] = []
        px = self.px
        for group in groups:
            for side, cpx, size, reason, _orders in group:
                if cpx == px and reason != R_ROLL:
                    self._apply(side, size, reason, second, usecs, out)
        return out

    def _apply(self, side: int, size: int, reason: int, second: int, usecs: int, out: list) -> None:
        orders = self.orders
        if reason == R_DELETE or size == 0:
            out += [(DELETE, self.side, self.px, 0, o[2], o[0]) for o in orders]
            self.orders, self.side = [], None
            return
        if reason == R_NEW or not orders or side != self.side:
            out += [(DELETE, self.side, self.px, 0, o[2], o[0]) for o in orders]
            self.side = side
            self.orders = self.market.orders_of_level(self.inst, side, self.px, size)
            out += [(NEW, side, self.px, o[1], o[2], o[0]) for o in self.orders]
            return
        total = sum(o[1] for o in orders)
        if reason == R_ADD and size > total:
            priority = sequence_number(second, usecs)
            oid = str(10**11 + mix64(self.inst.key ^ priority ^ (self.px << 20)) % (9 * 10**11))
            orders.append([oid, size - total, priority])
            out.append((NEW, side, self.px, size - total, priority, oid))
            return
        remove = total - size
        # trades take the oldest orders first; cancellations come from the newest
        fifo = reason == R_TRADE
        while remove > 0 and orders:
            o = orders[0] if fifo else orders[-1]
            if o[1] <= remove:
                remove -= o[1]
                del orders[0 if fifo else -1]
                out.append((DELETE, side, self.px, 0, o[2], o[0]))
            else:
                o[1] -= remove
                remove = 0
                out.append((CHANGE, side, self.px, o[1], o[2], o[0]))

    def roll_to(self, next_second: int) -> list[tuple]:
        """Updates that bring the level to how ``next_second`` starts (none if it already does)."""
        side, orders = self._anchor_orders(next_second)
        if side == self.side and orders == self.orders:
            return []
        out = [(DELETE, self.side, self.px, 0, o[2], o[0]) for o in self.orders]
        out += [(NEW, side, self.px, o[1], o[2], o[0]) for o in orders]
        self.side, self.orders = side, orders
        return out
