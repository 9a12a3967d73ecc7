"""One session's live market data: snapshots on subscribe, then each event as its time comes.

Every subscription keeps its own cursor (second, event index) into the shared tapes, so a slow
reader delays only itself; frames for all due events are joined into one write, and the loop
waits on the socket's flow control before writing more.
"""

from __future__ import annotations

import asyncio

from simulator import wire
from simulator.market import (
    BID,
    ROLL_OFFSET,
    SNAPSHOT_IMAGE,
    Instrument,
    Market,
    book_at,
    last_trade_before,
    trade_stamps,
)
from simulator.mbo import PriceOrders, sequence_number

BATCH_MESSAGES = 4096  # messages per write at most, so one busy symbol cannot starve the loop
IDLE_WAKE = 0.05  # seconds between checks when nothing is due
MIN_SLEEP = 0.002  # at high rates, gather about this much market time per write instead of waking per event


class MarketSub:
    """A LastTrade (1) / BBO (2) / OrderBook (4) subscription to one symbol."""

    def __init__(self, inst: Instrument, mask: int, second: int, index: int):
        self.inst = inst
        self.mask = mask
        self.second = second
        self.index = index
        self.snapshot_mask = mask  # streams that still owe their snapshot
        self.resync = False


class MboSub:
    """A market-by-order subscription to one price of one symbol."""

    def __init__(self, orders: PriceOrders, second: int, index: int):
        self.orders = orders
        self.second = second
        self.index = index
        self.resync = False


def position(market: Market, inst: Instrument, now: float) -> tuple[int, int]:
    """The (second, event index) a subscription made at ``now`` starts from: while the market is
    closed, the start of its next open second."""
    second = int(now)
    if not inst.is_open(second):
        return inst.next_open_second(second), 0
    tape = market.tape(inst, second)
    return second, tape.index_after(int((now - second) * 1_000_000))


class Feed:
    """Sends one session's subscriptions; owned by the session, which runs and cancels :meth:`run`."""

    def __init__(self, sim, conn):
        self.sim = sim
        self.clock = sim.clock
        self.market: Market = sim.market
        self.conn = conn
        self.subs: dict[str, MarketSub] = {}
        self.mbo: dict[tuple[str, int], MboSub] = {}
        self._waiter: asyncio.Future | None = None

    # subscriptions
    def subscribe(self, inst: Instrument, bits: int) -> None:
        sub = self.subs.get(inst.symbol)
        if sub is None:
            second, index = position(self.market, inst, self.clock.now())
            self.subs[inst.symbol] = MarketSub(inst, bits, second, index)
        else:
            added = bits & ~sub.mask
            sub.mask |= bits
            sub.snapshot_mask |= added
        self._wake()

    def unsubscribe(self, inst: Instrument, bits: int) -> None:
        sub = self.subs.get(inst.symbol)
        if sub is None:
            return
        sub.mask &= ~bits
        sub.snapshot_mask &= sub.mask
        if not sub.mask:
            del self.subs[inst.symbol]

    def subscribe_mbo(self, inst: Instrument, px: int) -> None:
        if (inst.symbol, px) in self.mbo:
            return
        second, index = position(self.market, inst, self.clock.now())
        orders = PriceOrders(self.market, inst, px)
        orders.replay(second, index)
        self.mbo[(inst.symbol, px)] = MboSub(orders, second, index)
        self._wake()

    def unsubscribe_mbo(self, inst: Instrument, px: int) -> None:
        self.mbo.pop((inst.symbol, px), None)

    def clear(self) -> None:
        self.subs.clear()
        self.mbo.clear()

    # the loop
    async def run(self) -> None:
        conn = self.conn
        clock = self.clock
        while True:
            if not self.subs and not self.mbo:
                await self._sleep(None)
                continue
            await conn.drain()
            if not conn.writable:
                return
            if self.sim.stalled():
                for sub in (*self.subs.values(), *self.mbo.values()):
                    sub.resync = True
                await self._sleep(IDLE_WAKE)
                continue
            now = clock.now()
            parts: list[bytes] = []
            counts: dict[str, list[int]] = {}
            budget = BATCH_MESSAGES
            next_due = now + clock.clock_seconds(IDLE_WAKE)
            for sub in list(self.subs.values()):
                if sub.resync:
                    self._resync(sub, now)
                if sub.snapshot_mask:
                    budget -= self._snapshot(sub, parts, counts)
                used, due = self._pump(sub, now, budget, parts, counts)
                budget -= used
                next_due = min(next_due, due)
            mbo_counts: dict[str, int] = {}
            for sub in list(self.mbo.values()):
                if sub.resync:
                    sub.resync = False
                    sub.second, sub.index = position(self.market, sub.orders.inst, now)
                    sub.orders.replay(sub.second, sub.index)
                used, due = self._pump_mbo(sub, now, budget, parts, mbo_counts)
                budget -= used
                next_due = min(next_due, due)
            if parts and conn.write(b"".join(parts)):
                self.sim.count_sent(counts, mbo_counts)
            if budget <= 0:
                await asyncio.sleep(0)
            else:
                await self._sleep(max(MIN_SLEEP, clock.real_seconds(next_due - clock.now())))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (forever if None) or until a subscription changes."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        handle = loop.call_later(delay, self._wake) if delay is not None else None
        try:
            await self._waiter
        finally:
            if handle is not None:
                handle.cancel()
            self._waiter = None

    def _resync(self, sub: MarketSub, now: float) -> None:
        """After a stall: skip what was not sent and start again from fresh snapshots."""
        sub.resync = False
        sub.second, sub.index = position(self.market, sub.inst, now)
        sub.snapshot_mask = sub.mask

    def _pump(self, sub: MarketSub, now: float, budget: int, parts: list, counts: dict) -> tuple[int, float]:
        """Append the frames of sub's events due by ``now``; returns (messages, when the next is due)."""
        market = self.market
        now_second = int(now)
        now_usecs = int((now - now_second) * 1_000_000)
        used = 0
        while True:
            second = sub.second
            if second > now_second:
                return used, float(second)
            tape = market.tape(sub.inst, second)
            if tape.closed:  # nothing trades until the market opens again: jump there
                sub.second, sub.index = sub.inst.next_open_second(second), 0
                continue
            limit = sub.index + max(0, budget - used) // 3 + 1
            if second < now_second:
                tape.ensure(limit)
                j = min(len(tape), limit)
            else:
                j = min(tape.index_after(now_usecs), limit)
            if j > sub.index:
                parts.append(tape.frames(sub.mask, sub.index, j))
                lt, bbo, book = tape.counts(sub.mask, sub.index, j)
                c = counts.get(sub.inst.symbol)
                if c is None:
                    c = counts[sub.inst.symbol] = [0, 0, 0, 0]
                c[0] += lt
                c[1] += bbo
                c[2] += book
                used += lt + bbo + book
                sub.index = j
            if tape.done and sub.index >= len(tape):
                if second < now_second:
                    sub.second += 1
                    sub.index = 0
                    if used < budget:
                        continue
                    return used, now
                return used, float(second + 1)
            if used >= budget or second < now_second:
                return used, now
            tape.ensure(sub.index + 1)
            if sub.index < len(tape):
                return used, second + tape.offsets[sub.index] / 1_000_000
            return used, float(second + 1)

    def _snapshot(self, sub: MarketSub, parts: list, counts: dict) -> int:
        """Snapshot messages for the streams in ``sub.snapshot_mask``, as of the cursor."""
        inst, market = sub.inst, self.market
        c = counts.setdefault(inst.symbol, [0, 0, 0, 0])
        n = 0
        if sub.snapshot_mask & 1:
            last = last_trade_before(market, inst, sub.second, sub.index)
            if last is not None:
                second, usecs, px, size, aggressor, volume = last
                nsecs, gateway_second, gateway_usecs = trade_stamps(inst.key, second, usecs)
                msg = wire.build(
                    "LastTrade",
                    symbol=inst.symbol,
                    exchange=inst.exchange,
                    presence_bits=wire.LAST_TRADE_PRESENCE,
                    is_snapshot=True,
                    trade_price=inst.price(px),
                    trade_size=size,
                    aggressor=aggressor,
                    volume=volume,
                    source_ssboe=second,
                    source_usecs=usecs,
                    source_nsecs=nsecs,
                    ssboe=gateway_second,
                    usecs=gateway_usecs,
                )
                parts.append(wire.encode(msg))
                c[3] += 1  # not a trade: counted apart, so last_trade counts trades only
                n += 1
        if sub.snapshot_mask & 6:
            state = book_at(market, inst, sub.second, sub.index)
            ssboe, usecs = state.as_of
            if sub.snapshot_mask & 2:
                b, bs, a, as_, bo, ao = state.bbo()
                msg = wire.build(
                    "BestBidOffer",
                    symbol=inst.symbol,
                    exchange=inst.exchange,
                    presence_bits=wire.BBO_PRESENCE,
                    is_snapshot=True,
                    bid_price=inst.price(b),
                    bid_size=bs,
                    bid_orders=bo,
                    ask_price=inst.price(a),
                    ask_size=as_,
                    ask_orders=ao,
                    ssboe=ssboe,
                    usecs=usecs,
                )
                parts.append(wire.encode(msg))
                c[1] += 1
                n += 1
            if sub.snapshot_mask & 4:
                bids = sorted(state.bids.items(), reverse=True)
                asks = sorted(state.asks.items())
                msg = wire.build(
                    "OrderBook",
                    symbol=inst.symbol,
                    exchange=inst.exchange,
                    presence_bits=3,
                    update_type=SNAPSHOT_IMAGE,
                    bid_price=[inst.price(px) for px, _ in bids],
                    bid_size=[s for _, s in bids],
                    bid_orders=[state.bid_orders[px] for px, _ in bids],
                    ask_price=[inst.price(px) for px, _ in asks],
                    ask_size=[s for _, s in asks],
                    ask_orders=[state.ask_orders[px] for px, _ in asks],
                    ssboe=ssboe,
                    usecs=usecs,
                )
                parts.append(wire.encode(msg))
                c[2] += 1
                n += 1
        sub.snapshot_mask = 0
        return n

    def _pump_mbo(self, sub: MboSub, now: float, budget: int, parts: list, counts: dict) -> tuple[int, float]:
        market = self.market
        orders = sub.orders
        inst = orders.inst
        now_second = int(now)
        now_usecs = int((now - now_second) * 1_000_000)
        used = 0
        while used < budget:
            second = sub.second
            if second > now_second:
                return used, float(second)
            tape = market.tape(inst, second)
            if tape.closed:
                sub.second, sub.index = inst.next_open_second(second), 0
                continue
            if second < now_second:
                tape.complete()
                j = len(tape)
            else:
                j = tape.index_after(now_usecs)
            for k in range(sub.index, j):
                off, _t, _b, groups = tape.events[k]
                if off == ROLL_OFFSET:
                    continue  # the end of the second moves the orders, below
                updates = orders.apply_event(second, off, groups)
                if updates:
                    used += self._mbo_frames(inst, second, off, updates, parts, counts)
            sub.index = j
            if second < now_second:
                nxt = inst.next_open_second(second + 1)  # across a close, straight to the reopening
                updates = orders.roll_to(nxt)
                if updates:
                    used += self._mbo_frames(inst, second, ROLL_OFFSET, updates, parts, counts)
                sub.second = nxt
                sub.index = 0
                continue
            tape.ensure(j + 1)
            if j < len(tape):
                return used, second + tape.offsets[j] / 1_000_000
            return used, float(second + 1)
        return used, now

    @staticmethod
    def _mbo_frames(inst: Instrument, second: int, usecs: int, updates, parts: list, counts: dict) -> int:
        seq = sequence_number(second, usecs)
        msg = wire.build(
            "DepthByOrder",
            symbol=inst.symbol,
            exchange=inst.exchange,
            sequence_number=seq,
            update_type=[u[0] for u in updates],
            transaction_type=[1 if u[1] == BID else 2 for u in updates],
            depth_price=[inst.price(u[2]) for u in updates],
            depth_size=[u[3] for u in updates],
            depth_order_priority=[u[4] for u in updates],
            exchange_order_id=[u[5] for u in updates],
            ssboe=second,
            usecs=usecs,
        )
        end = wire.build(
            "DepthByOrderEndEvent",
            symbol=[inst.symbol],
            exchange=[inst.exchange],
            sequence_number=seq,
            ssboe=second,
            usecs=usecs,
        )
        parts.append(wire.encode(msg))
        parts.append(wire.encode(end))
        counts[inst.symbol] = counts.get(inst.symbol, 0) + 1
        return 2
