"""The synthetic market: every event is a pure function of (seed, symbol, second, rate).

A second of one symbol starts from an *anchor* state (prices from multi-scale value noise on
the tick grid, sizes from slowly varying noise), evolves through a seeded sequence of events
at strictly increasing microsecond offsets, and ends with a *roll* event at offset 999,999
that restates the levels that differ from the next second's anchor. Live feeds, snapshots and
history replay all read the same :class:`Tape`, so they agree by construction.

Every book level carries its order count: the resting orders behind it are tracked through the
tape with the same rules market-by-order depth replays them by (simulator/mbo.py), starting each
second from the anchor's decomposition (`Market.orders_of_level`), so OrderBook and BBO order
counts equal the number of orders a DepthByOrder subscriber holds at that price, at every event.

The market trades only while the product's exchange is open (rdc_common.calendar): a second in a
daily halt, a weekend or a holiday has an empty tape. The last open second before a close rolls
to the anchor of the first second after it, so the book a client holds across the close is the
book the reopening starts from, with no message in between.
"""

from __future__ import annotations

import array
import bisect
import datetime as dt
import functools
import hashlib
import itertools
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from rdc_common.calendar import MarketHours, contract_at, expiry_instant, hours, is_expired
from rdc_common.products import (
    PRODUCTS,
    Contract,
    Product,
    SymbolError,
    listed_contracts,
    normalize_exchange,
    normalize_symbol,
)
from simulator.wire import T_SOURCE_NSECS, T_SOURCE_USECS, T_USECS, varint

LEVELS = 10  # price levels per side in every book
ROLL_OFFSET = 999_999  # microsecond of the roll event, the last of each second
LAST_EVENT_OFFSET = 999_998
FAST_RATE = 50_000  # messages per second per symbol that --rate 0 stands for

BID, ASK = 1, 2  # also the OrderBook presence bits and DepthByOrder transaction types
BUY, SELL = 1, 2  # aggressor

# Why a book level changed; market-by-order depth needs it to know which orders moved.
R_ADD, R_CANCEL, R_TRADE, R_NEW, R_DELETE, R_ROLL = range(6)

# OrderBook update types
SOLO, BEGIN, MIDDLE, END, SNAPSHOT_IMAGE = 7, 4, 5, 6, 3

# Per-second activity weights: mostly quiet, sometimes bursts. Drawn once per symbol and trading day.
_WEIGHT_VALUES = (1, 2, 3, 4, 5, 6, 8, 12)
_WEIGHT_CUM = tuple(itertools.accumulate((10, 22, 22, 18, 12, 8, 5, 3)))
W_MEAN = sum(v * p for v, p in zip(_WEIGHT_VALUES, (10, 22, 22, 18, 12, 8, 5, 3), strict=True)) / 100

MSGS_PER_EVENT = 1.85  # average messages an ordinary event produces across the three streams
TRADE_FRACTION = 0.25
P_CONSUME = 0.12  # a trade takes the whole top level
NOISE_SCALES = 23  # value-noise octaves of 1 s .. 2^22 s (about 48 days)
DAILY_VOL = 0.012  # daily standard deviation of the price, as a fraction

M64 = (1 << 64) - 1
_FIELD = (1 << 21) - 1
_ONE_BOOK_EVENT = 1 << 42
_ONE_QUOTE_EVENT = (1 << 21) + _ONE_BOOK_EVENT
_ONE_TRADE_EVENT = 1 + _ONE_QUOTE_EVENT


def mix64(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread integer hash."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & M64
    return x ^ (x >> 31)


def stable_key(*parts) -> int:
    """A 64-bit key from strings/ints that is the same on every run (unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def nominal_rate(rate: int) -> int:
    return rate if rate > 0 else FAST_RATE


def volume_unit(rate: int) -> int:
    """Contracts per unit of activity weight: about three contracts per trade on average."""
    return max(1, round(nominal_rate(rate) * TRADE_FRACTION / MSGS_PER_EVENT * 3 / W_MEAN))


# --- instruments ---------------------------------------------------------------------------------


def _decimals(tick: float) -> int:
    exponent = Decimal(repr(tick)).normalize().as_tuple().exponent
    return max(0, -exponent)


@dataclass(frozen=True)
class Instrument:
    """One tradable contract with what the market model needs precomputed."""

    symbol: str
    exchange: str
    product: Product
    contract: Contract
    decimals: int
    base_ticks: int
    sigma: float  # noise amplitude in ticks
    key: int
    hours: MarketHours  # when the product trades

    def is_open(self, second: int) -> bool:
        return self.hours.is_open(second)

    def next_open_second(self, second: int) -> int:
        """`second` when it is open, else the first whole second of the next open period."""
        t = self.hours.next_open(second)
        return -int(-t // 1) if t is not None else second

    def last_open_second_before(self, second: int) -> int | None:
        """The last open second strictly before `second`."""
        if self.is_open(second - 1):
            return second - 1
        t = self.hours.prev_close(second)
        return -int(-t // 1) - 1 if t is not None else None

    @property
    def tick(self) -> float:
        return self.product.tick_size

    def price(self, ticks: int) -> float:
        return round(ticks * self.product.tick_size, self.decimals)

    def ticks_of(self, price: float) -> int | None:
        """The tick count of a price on this grid, None when the price is off the grid."""
        ticks = round(price / self.product.tick_size)
        if abs(ticks * self.product.tick_size - price) > self.product.tick_size * 1e-6:
            return None
        return ticks


LISTED_MONTHS_AHEAD = 36


def resolve_contract(symbol: str, exchange: str, now: float, expired_ok: bool = False) -> Contract:
    """The contract ``symbol`` on ``exchange`` listed at instant ``now``; SymbolError with a sentence otherwise.

    ``expired_ok``: a contract that has stopped trading is still found (the history plant replays
    the trades it made until its expiry, as a real gateway does)."""
    exchange = normalize_exchange(exchange)
    try:
        c = contract_at(normalize_symbol(symbol), now)
    except SymbolError as exc:
        raise SymbolError(f"symbol {symbol} not found on {exchange}: {exc}") from None
    if c.exchange != exchange:
        raise SymbolError(f"symbol {c.symbol} not found on {exchange}: it trades on {c.exchange}")
    if is_expired(c, now):
        if expired_ok:
            return c
        ended = dt.datetime.fromtimestamp(expiry_instant(c.product, c.expiry), dt.UTC).isoformat()
        raise SymbolError(f"symbol {c.symbol} is not listed on {exchange}: it expired at {ended}")
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    listed = {x.symbol for x in listed_contracts(c.product, today, months_ahead=LISTED_MONTHS_AHEAD)}
    if c.symbol not in listed:
        raise SymbolError(f"symbol {c.symbol} is not listed on {exchange}: contracts are listed "
                          f"{LISTED_MONTHS_AHEAD} months ahead")
    return c


# --- time and rate -------------------------------------------------------------------------------


class RateTimeline:
    """The --rate in effect for every second: changes apply from the next whole second."""

    def __init__(self, initial: int):
        self._seconds: list[int] = []
        self._rates: list[int] = []
        self.initial = initial

    def at(self, second: int) -> int:
        i = bisect.bisect_right(self._seconds, second)
        return self._rates[i - 1] if i else self.initial

    def change(self, rate: int, now: float) -> int:
        """Set ``rate`` from the second after ``now``; returns that second."""
        effective = int(now) + 1
        while self._seconds and self._seconds[-1] >= effective:
            self._seconds.pop()
            self._rates.pop()
        self._seconds.append(effective)
        self._rates.append(rate)
        return effective

    def segments(self, start: int, end: int):
        """(from, to, rate) pieces covering the seconds [start, end)."""
        cursor = start
        i = bisect.bisect_right(self._seconds, start)
        rate = self._rates[i - 1] if i else self.initial
        while cursor < end:
            nxt = self._seconds[i] if i < len(self._seconds) else end
            stop = min(nxt, end)
            if stop > cursor:
                yield cursor, stop, rate
            cursor = stop
            if i < len(self._rates):
                rate = self._rates[i]
            i += 1


# --- anchors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The state a second starts from: contiguous levels, index 0 is the top of each side."""

    bid: int
    ask: int
    bids: tuple[int, ...]
    asks: tuple[int, ...]

    def levels(self, side: int) -> dict[int, int]:
        if side == BID:
            return {self.bid - k: s for k, s in enumerate(self.bids)}
        return {self.ask + k: s for k, s in enumerate(self.asks)}


_SQRT_SCALES = [math.sqrt(1 << k) for k in range(NOISE_SCALES)]
_GOLD = 0x9E3779B97F4A7C15
_SIZE_BUCKET = 16  # seconds over which a level's size drifts from one value to the next


def _unit(key: int, k: int, j: int) -> float:
    """Deterministic uniform value in [-sqrt 3, sqrt 3) (unit variance) for lattice point j of scale k."""
    h = mix64((key + (k + 1) * _GOLD + j * 0xD1B54A32D192ED03) & M64)
    return (h / 18446744073709551616.0 * 2.0 - 1.0) * 1.7320508075688772


def _u01(x: int) -> float:
    return mix64(x & M64) / 18446744073709551616.0


def _decomp_key(key: int, side: int, px: int, size: int) -> int:
    return mix64((key ^ (side * 0x51ED270B27A1E5D5) ^ (px * 0x2545F4914F6CDD1D) ^ (size << 40)) & M64)


# --- the clocks of a trade -----------------------------------------------------------------------
# A LastTrade carries two times, as Rithmic's does: the exchange's (source_ssboe/usecs/nsecs, the
# event itself) and the gateway's (ssboe/usecs, when the ticker plant stamped it). The tape's event
# offset is the exchange time in microseconds; the nanoseconds and the gateway's delay are derived
# from the instrument's seeded key and the trade's absolute microsecond, so a seed fixes both.

GATEWAY_MIN_US = 150  # the gateway stamps a trade 150..600 us after the exchange
GATEWAY_SPAN_US = 450
_DELAY_STEP_US = 1000  # the delay moves linearly between values drawn every millisecond
_NS_MULT = 2654435761  # Knuth's multiplicative hash: sub-microsecond digits from the microsecond


@functools.lru_cache(maxsize=256)
def clock_table(key: int, second: int) -> tuple[tuple[int, ...], int]:
    """What the trade clocks of one instrument's second derive from: the gateway's delay at each of
    its 1,001 millisecond marks (the last is the next second's first, so delays join up), and the
    salt of its sub-microsecond digits. Drawn once per second, so a trade costs small-int arithmetic."""
    base = second * 1000
    delays = tuple(((((key + base + q) * _GOLD) & M64) >> 32) % (GATEWAY_SPAN_US + 1) for q in range(1001))
    return delays, mix64((key ^ second) & M64) & 0xFFFFF


def stamps_in(table: tuple[tuple[int, ...], int], second: int, usecs: int) -> tuple[int, int, int]:
    """trade_stamps with the second's clock_table already in hand (the feed's hot path)."""
    delays, salt = table
    q, r = divmod(usecs, _DELAY_STEP_US)
    d0 = delays[q]
    g = usecs + GATEWAY_MIN_US + d0 + (delays[q + 1] - d0) * r // _DELAY_STEP_US
    nsecs = usecs * 1000 + (((usecs ^ salt) * _NS_MULT) >> 16) % 1000
    if g >= 1_000_000:
        return nsecs, second + 1, g - 1_000_000
    return nsecs, second, g


def trade_stamps(key: int, second: int, usecs: int) -> tuple[int, int, int]:
    """(source_nsecs, gateway ssboe, gateway usecs) of the trade at ``usecs`` into ``second``.

    ``source_nsecs`` is the exchange's nanoseconds within the second (``usecs * 1000`` plus a
    deterministic 0..999). The gateway's delay drifts (slope under 1/2), so gateway stamps never
    run backwards while exchange times move forward, and it may carry into the next second.
    """
    return stamps_in(clock_table(key, second), second, usecs)

def _fill_oldest(orders: list[int], qty: int) -> None:
    """A trade of ``qty`` fills the oldest orders first (mbo.PriceOrders does the same)."""
    while qty > 0:
        first = orders[0]
        if first <= qty:
            qty -= first
            del orders[0]
        else:
            orders[0] = first - qty
            return


def _cancel_newest(orders: list[int], qty: int) -> None:
    """A cancellation of ``qty`` comes from the newest orders (mbo.PriceOrders does the same)."""
    while qty > 0:
        last = orders[-1]
        if last <= qty:
            qty -= last
            orders.pop()
        else:
            orders[-1] = last - qty
            return


class Market:
    """The deterministic market of one simulator run: anchors, tapes and cumulative volume."""

    def __init__(self, seed: int, rates: RateTimeline, tapes_per_symbol: int = 2):
        self.seed = seed
        self.rates = rates
        self._instruments: dict[str, Instrument] = {}
        self._anchors: OrderedDict[tuple[str, int], Anchor] = OrderedDict()
        # Live feeds read the second their cursor is in, and maybe the one before; at --rate 0 a
        # tape is tens of megabytes, so keep only those.
        self._tapes: dict[str, OrderedDict[tuple[int, int], Tape]] = {}
        self._tapes_per_symbol = tapes_per_symbol
        self._weights: OrderedDict[tuple[str, int], tuple[bytes, array.array]] = OrderedDict()
        self._decomp: dict[tuple[int, int, int, int], tuple[int, ...]] = {}

    # instruments
    def instrument(self, c: Contract) -> Instrument:
        inst = self._instruments.get(c.symbol)
        if inst is None:
            p = c.product
            base_ticks = round(p.base_price / p.tick_size)
            # value noise summed over octaves has about twice the per-second spread of its amplitude
            sigma = DAILY_VOL * p.base_price / p.tick_size / math.sqrt(86400) / 2
            inst = Instrument(
                symbol=c.symbol,
                exchange=c.exchange,
                product=p,
                contract=c,
                decimals=_decimals(p.tick_size),
                base_ticks=base_ticks,
                sigma=sigma,
                key=stable_key("instrument", self.seed, c.symbol),
                hours=hours(p),
            )
            self._instruments[c.symbol] = inst
        return inst

    # anchors
    def mid_ticks(self, inst: Instrument, second: int) -> float:
        total = 0.0
        key = inst.key
        for k in range(NOISE_SCALES):
            j, r = divmod(second, 1 << k)
            v0 = _unit(key, k, j)
            v1 = _unit(key, k, j + 1)
            total += (v0 + (v1 - v0) * (r / (1 << k))) * _SQRT_SCALES[k]
        return max(inst.base_ticks * 0.3, inst.base_ticks + inst.sigma * total)

    def level_size(self, inst: Instrument, side: int, px: int, depth: int, second: int) -> int:
        """Resting size at a level: deeper levels are larger, each price drifts slowly over time."""
        bucket, r = divmod(second, _SIZE_BUCKET)
        base = inst.key ^ (side * 0x632BE59BD9B4E019) ^ (px * 0x8CB92BA72F3D8DD7)
        f0 = _u01(base + bucket * _GOLD)
        f1 = _u01(base + (bucket + 1) * _GOLD)
        f = f0 + (f1 - f0) * (r / _SIZE_BUCKET)
        return 1 + int((12 + 7 * depth) * (0.3 + 1.4 * f))

    def anchor(self, inst: Instrument, second: int) -> Anchor:
        cache_key = (inst.symbol, second)
        a = self._anchors.get(cache_key)
        if a is not None:
            return a
        mid = self.mid_ticks(inst, second)
        spread = 2 if _u01(inst.key ^ (second * 0x9FB21C651E98DF25)) < 0.15 else 1
        bid = math.floor(mid - (spread - 1) / 2)
        ask = bid + spread
        bids = tuple(self.level_size(inst, BID, bid - d, d, second) for d in range(LEVELS))
        asks = tuple(self.level_size(inst, ASK, ask + d, d, second) for d in range(LEVELS))
        a = Anchor(bid, ask, bids, asks)
        self._anchors[cache_key] = a
        if len(self._anchors) > 4096:
            self._anchors.popitem(last=False)
        return a

    # activity and volume
    def _day_weights(self, inst: Instrument, day_start: int) -> tuple[bytes, array.array]:
        cache_key = (inst.symbol, day_start)
        w = self._weights.get(cache_key)
        if w is None:
            rng = random.Random(stable_key("weights", inst.key, day_start))
            values = bytes(rng.choices(_WEIGHT_VALUES, cum_weights=_WEIGHT_CUM, k=86400))
            prefix = array.array("q", [0, *itertools.accumulate(values)])
            w = self._weights[cache_key] = (values, prefix)
            if len(self._weights) > 32:
                self._weights.popitem(last=False)
        return w

    @staticmethod
    def day_start(inst: Instrument, second: int) -> int:
        """The first second of the trading session ``second`` belongs to (cumulative volume restarts there)."""
        start = inst.hours.session_open_at(second)
        d = int(start) if start is not None else second - second % 86400
        return max(d, second - 86399)  # the weights cover one day; no session is longer

    def weight(self, inst: Instrument, second: int) -> int:
        d = self.day_start(inst, second)
        return self._day_weights(inst, d)[0][second - d]

    def volume_before(self, inst: Instrument, second: int) -> int:
        """Contracts traded from the start of the trading session up to the start of ``second``
        (open seconds only: a halt inside the session trades nothing)."""
        d = self.day_start(inst, second)
        prefix = self._day_weights(inst, d)[1]
        total = 0
        for lo, hi in inst.hours.open_intervals(d, second):
            for s0, s1, rate in self.rates.segments(-int(-lo // 1), -int(-hi // 1)):
                total += volume_unit(rate) * (prefix[s1 - d] - prefix[s0 - d])
        return total

    # tapes
    def tape(self, inst: Instrument, second: int, cache: bool = True) -> Tape:
        """The tape of ``second``; ``cache=False`` (history replay) keeps live feeds' tapes cached."""
        rate = self.rates.at(second)
        cache_key = (second, rate)
        tapes = self._tapes.get(inst.symbol)
        if tapes is None:
            tapes = self._tapes[inst.symbol] = OrderedDict()
        t = tapes.get(cache_key)
        if t is None:
            t = Tape(self, inst, second, rate)
            if cache:
                tapes[cache_key] = t
                if len(tapes) > self._tapes_per_symbol:
                    tapes.popitem(last=False)
        elif cache:
            tapes.move_to_end(cache_key)
        return t

    # order decomposition for market-by-order depth and the books' order counts
    def order_sizes(self, inst: Instrument, side: int, px: int, size: int) -> tuple[int, ...]:
        """The sizes of the resting orders a level of ``size`` starts as, oldest first; same for every second."""
        key = (inst.key, side, px, size)
        sizes = self._decomp.get(key)
        if sizes is None:
            if size <= 0:
                sizes = ()
            else:
                h = _decomp_key(inst.key, side, px, size)
                n = min(size, 1 + min(4, size // 12))
                cuts = sorted({1 + (mix64(h + i) % (size - 1)) for i in range(n - 1)}) if size > 1 else []
                bounds = [0, *cuts, size]
                sizes = tuple(bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1))
            if len(self._decomp) > 200_000:
                self._decomp.clear()
            self._decomp[key] = sizes
        return sizes

    def orders_of_level(self, inst: Instrument, side: int, px: int, size: int) -> list[list]:
        """The resting orders [id, size, priority] a level of ``size`` starts as; same for every second."""
        sizes = self.order_sizes(inst, side, px, size)
        if not sizes:
            return []
        h = _decomp_key(inst.key, side, px, size)
        return [[str(10**11 + mix64(h ^ (i + 1)) % (9 * 10**11)), q, i + 1] for i, q in enumerate(sizes)]


class Tape:
    """The events of one symbol in one second, generated lazily in order.

    ``events[i] = (usecs, trade, bbo, groups)``: ``trade`` is (px, size, aggressor, volume) or
    None, ``bbo`` is (bid, bid_size, ask, ask_size, bid_orders, ask_orders) or None, ``groups`` the
    book messages, each a tuple of (side, px, size, reason, orders) changes (size and orders 0
    delete the level). Every event changes the book.
    """

    def __init__(self, market: Market, inst: Instrument, second: int, rate: int):
        self.market = market
        self.inst = inst
        self.second = second
        self.rate = rate
        self.events: list[tuple] = []
        self.offsets: list[int] = []
        # cumulative message counts after each event, three 21-bit fields: trades | BBO << 21 | book << 42
        self.packed_counts = [0]
        self.done = False
        self.volume_at_end: int | None = None
        self._encoded: dict[int, list[bytes]] = {}
        self._encoder = None
        # A second the exchange is closed: no events at all (feeds skip to the next open second).
        self.closed = not inst.is_open(second)
        if self.closed:
            self.done = True
            return
        self._start_generator()

    def __len__(self) -> int:
        return len(self.events)

    # generation
    def _start_generator(self) -> None:
        m, inst, s = self.market, self.inst, self.second
        anchor = m.anchor(inst, s)
        self._next_anchor = m.anchor(inst, inst.next_open_second(s + 1))
        w = m.weight(inst, s)
        messages = nominal_rate(self.rate) * w / W_MEAN
        # At least one trade a second, so the day's cumulative volume is always printed in full.
        n = max(1, min(900_000, round(messages / MSGS_PER_EVENT)))
        volume = volume_unit(self.rate) * w
        trades = max(1, min(volume, round(n * TRADE_FRACTION)))
        self._rng = random.Random(stable_key("tape", inst.key, s, nominal_rate(self.rate)))
        rnd = self._rng.random
        # Intra-second bursts: eight slices of the second with very unequal shares of the events.
        shares = [rnd() ** 3 + 0.02 for _ in range(8)]
        total = sum(shares)
        self._cum = [0.0, *itertools.accumulate(x / total for x in shares)]
        self._cum[-1] = 1.0
        self._cum.append(2.0)  # a sentinel no position reaches
        self._inv_width = [1.0 / (self._cum[k + 1] - self._cum[k]) for k in range(8)] + [0.0]
        self._seg = 0
        self._n = n
        self._i = 0
        self._prev_off = 0
        self._trades_left = trades
        self._volume_left = volume
        self._cumvol = m.volume_before(inst, s)
        self._b, self._a = anchor.bid, anchor.ask
        self._bids, self._asks = list(anchor.bids), list(anchor.asks)
        # The order sizes behind each level, oldest first, kept as mbo.PriceOrders keeps them.
        self._bo = [list(m.order_sizes(inst, BID, anchor.bid - k, q)) for k, q in enumerate(anchor.bids)]
        self._ao = [list(m.order_sizes(inst, ASK, anchor.ask + k, q)) for k, q in enumerate(anchor.asks)]
        self._target2 = self._next_anchor.bid + self._next_anchor.ask
        self.volume_at_start = self._cumvol

    def _extend(self, upto: int | None = None, until_offset: int | None = None) -> None:
        """Generate events until ``upto`` exist or one lies beyond ``until_offset`` (default: 4096 more)."""
        if self.done:
            return
        rnd = self._rng.random
        size_of = self.market.level_size
        inst, second = self.inst, self.second
        n, i, seg, prev = self._n, self._i, self._seg, self._prev_off
        cum, inv_width = self._cum, self._inv_width
        lo, hi, w = cum[seg], cum[seg + 1], inv_width[seg]
        b, a, bids, asks = self._b, self._a, self._bids, self._asks
        bo, ao = self._bo, self._ao
        orders_of = self.market.order_sizes
        trades_left, volume_left, cumvol = self._trades_left, self._volume_left, self._cumvol
        target2 = self._target2
        events, offsets, packed = self.events, self.offsets, self.packed_counts
        count = packed[-1]
        if upto is not None:
            stop = upto
        elif until_offset is None:
            stop = len(events) + 4096
        else:
            stop = 1 << 60
        until = until_offset if until_offset is not None else 1 << 60
        ceiling0 = LAST_EVENT_OFFSET - n + 1
        slice_len = LAST_EVENT_OFFSET / 8.0
        inv_n = 1.0 / n if n else 0.0
        n_events = len(events)
        while i < n and n_events < stop and prev <= until:
            # time: strictly increasing, denser in the burst slices
            u = (i + rnd()) * inv_n
            while u >= hi:
                seg += 1
                lo, hi, w = cum[seg], cum[seg + 1], inv_width[seg]
            off = 1 + int((seg + (u - lo) * w) * slice_len)
            if off <= prev:
                off = prev + 1
            if off > ceiling0 + i:
                off = ceiling0 + i
            prev = off
            if rnd() * (n - i) < trades_left:
                size = volume_left if trades_left == 1 else 1 + int(rnd() * (2 * volume_left / trades_left - 1))
                cap = volume_left - trades_left + 1
                if size > cap:
                    size = cap
                trades_left -= 1
                volume_left -= size
                cumvol += size
                drift = target2 - b - a
                if rnd() < (0.85 if drift > 3 else 0.15 if drift < -3 else 0.5 + drift * 0.0875):
                    # a buyer lifts the offer
                    top = asks[0]
                    trade = (a, size, BUY, cumvol)
                    if size >= top or rnd() < P_CONSUME:
                        old = a
                        a += 1
                        del asks[0]
                        del ao[0]
                        deep = size_of(inst, ASK, a + 9, 9, second)
                        asks.append(deep)
                        ao.append(list(orders_of(inst, ASK, a + 9, deep)))
                        book = (((ASK, old, 0, R_DELETE, 0), (ASK, a + 9, deep, R_NEW, len(ao[9]))),)
                    else:
                        asks[0] = top - size
                        first = ao[0][0]
                        if first > size:  # the usual case, inline: the oldest order is partly filled
                            ao[0][0] = first - size
                        else:
                            _fill_oldest(ao[0], size)
                        book = (((ASK, a, top - size, R_TRADE, len(ao[0])),),)
                else:  # a seller hits the bid
                    top = bids[0]
                    trade = (b, size, SELL, cumvol)
                    if size >= top or rnd() < P_CONSUME:
                        old = b
                        b -= 1
                        del bids[0]
                        del bo[0]
                        deep = size_of(inst, BID, b - 9, 9, second)
                        bids.append(deep)
                        bo.append(list(orders_of(inst, BID, b - 9, deep)))
                        book = (((BID, old, 0, R_DELETE, 0), (BID, b - 9, deep, R_NEW, len(bo[9]))),)
                    else:
                        bids[0] = top - size
                        first = bo[0][0]
                        if first > size:
                            bo[0][0] = first - size
                        else:
                            _fill_oldest(bo[0], size)
                        book = (((BID, b, top - size, R_TRADE, len(bo[0])),),)
                events.append((off, trade, (b, bids[0], a, asks[0], len(bo[0]), len(ao[0])), book))
                count += _ONE_TRADE_EVENT
            else:
                x = rnd()
                # A wide spread is filled quickly, as on a liquid futures book.
                if x >= 0.45 and (a - b == 1 or x >= 0.85):  # a deeper level changes: book only
                    k = 1 + int(rnd() * 9)
                    if rnd() < 0.5:
                        levels, orders, side, px = bids, bo[k], BID, b - k
                    else:
                        levels, orders, side, px = asks, ao[k], ASK, a + k
                    d = 1 + int(rnd() * 12)
                    cur = levels[k]
                    if rnd() < 0.5 or cur == 1:
                        levels[k] = cur + d
                        orders.append(d)  # a new order joins the back of the queue
                        events.append((off, None, None, (((side, px, cur + d, R_ADD, len(orders)),),)))
                    else:
                        new = cur - d if cur > d else 1
                        levels[k] = new
                        _cancel_newest(orders, cur - new)
                        events.append((off, None, None, (((side, px, new, R_CANCEL, len(orders)),),)))
                    count += _ONE_BOOK_EVENT
                else:
                    drift = target2 - b - a
                    if a - b >= 2:  # a new order inside the spread
                        if rnd() < (0.85 if drift > 3 else 0.15 if drift < -3 else 0.5 + drift * 0.0875):
                            b += 1
                            s = size_of(inst, BID, b, 0, second)
                            bids.insert(0, s)
                            del bids[LEVELS]
                            bo.insert(0, list(orders_of(inst, BID, b, s)))
                            del bo[LEVELS]
                            book = (((BID, b, s, R_NEW, len(bo[0])), (BID, b - LEVELS, 0, R_DELETE, 0)),)
                        else:
                            a -= 1
                            s = size_of(inst, ASK, a, 0, second)
                            asks.insert(0, s)
                            del asks[LEVELS]
                            ao.insert(0, list(orders_of(inst, ASK, a, s)))
                            del ao[LEVELS]
                            book = (((ASK, a, s, R_NEW, len(ao[0])), (ASK, a + LEVELS, 0, R_DELETE, 0)),)
                    else:  # the top of one side changes
                        y = rnd()
                        if y < 0.06 and drift < -1:  # the bid is pulled: the market ticks down
                            old = b
                            b -= 1
                            del bids[0]
                            del bo[0]
                            deep = size_of(inst, BID, b - 9, 9, second)
                            bids.append(deep)
                            bo.append(list(orders_of(inst, BID, b - 9, deep)))
                            book = (((BID, old, 0, R_DELETE, 0), (BID, b - 9, deep, R_NEW, len(bo[9]))),)
                        elif y < 0.06 and drift > 1:  # the offer is pulled: the market ticks up
                            old = a
                            a += 1
                            del asks[0]
                            del ao[0]
                            deep = size_of(inst, ASK, a + 9, 9, second)
                            asks.append(deep)
                            ao.append(list(orders_of(inst, ASK, a + 9, deep)))
                            book = (((ASK, old, 0, R_DELETE, 0), (ASK, a + 9, deep, R_NEW, len(ao[9]))),)
                        else:
                            levels, orders, side, px = (bids, bo[0], BID, b) if y < 0.53 else (asks, ao[0], ASK, a)
                            d = 1 + int(rnd() * 8)
                            cur = levels[0]
                            if rnd() < 0.5 or cur == 1:
                                levels[0] = cur + d
                                orders.append(d)
                                book = (((side, px, cur + d, R_ADD, len(orders)),),)
                            else:
                                new = cur - d if cur > d else 1
                                levels[0] = new
                                _cancel_newest(orders, cur - new)
                                book = (((side, px, new, R_CANCEL, len(orders)),),)
                    events.append((off, None, (b, bids[0], a, asks[0], len(bo[0]), len(ao[0])), book))
                    count += _ONE_QUOTE_EVENT
            offsets.append(off)
            packed.append(count)
            n_events += 1
            i += 1
        self._i, self._seg, self._prev_off = i, seg, prev
        self._b, self._a = b, a
        self._trades_left, self._volume_left, self._cumvol = trades_left, volume_left, cumvol
        if i >= n and not self.done:
            roll = self._roll(b, a, bids, asks, bo, ao)
            if roll is not None:
                events.append(roll)
                offsets.append(ROLL_OFFSET)
                packed.append(
                    count
                    + (_ONE_QUOTE_EVENT - _ONE_BOOK_EVENT) * (roll[2] is not None)
                    + _ONE_BOOK_EVENT * len(roll[3])
                )
            self.done = True
            self.volume_at_end = cumvol

    def _roll(self, b: int, a: int, bids: list[int], asks: list[int], bo: list[list], ao: list[list]):
        """The event that moves the book from where the second ended to the next anchor: every level
        whose size or order count differs from the anchor's (market-by-order depth moves the orders
        there at the same instant)."""
        nxt = self._next_anchor
        inst, orders_of = self.inst, self.market.order_sizes
        deletes = []
        changes = {BID: [], ASK: []}
        top_counts = {}
        for side, old_top, sizes, orders, new in ((BID, b, bids, bo, nxt.levels(BID)),
                                                  (ASK, a, asks, ao, nxt.levels(ASK))):
            sign = -1 if side == BID else 1
            old = {old_top + sign * k: (s, len(orders[k])) for k, s in enumerate(sizes)}
            deletes += [(side, px, 0, R_ROLL, 0) for px in old if px not in new]
            for px, s in new.items():
                n = len(orders_of(inst, side, px, s))
                if old.get(px) != (s, n):
                    changes[side].append((side, px, s, R_ROLL, n))
                if px == (nxt.bid if side == BID else nxt.ask):
                    top_counts[side] = n
        groups = tuple(g for g in (tuple(deletes), tuple(changes[BID]), tuple(changes[ASK])) if g)
        if not groups:
            return None
        new_bbo = (nxt.bid, nxt.bids[0], nxt.ask, nxt.asks[0], top_counts[BID], top_counts[ASK])
        bbo = new_bbo if new_bbo != (b, bids[0], a, asks[0], len(bo[0]), len(ao[0])) else None
        return (ROLL_OFFSET, None, bbo, groups)

    def generate_some(self) -> bool:
        """Generate the next few thousand events; True once the second is complete."""
        self._extend()
        return self.done

    def ensure(self, count: int) -> None:
        while len(self.events) < count and not self.done:
            self._extend(upto=count)

    def complete(self) -> Tape:
        while not self.done:
            self._extend()
        return self

    def index_after(self, usecs: int) -> int:
        """Number of events at or before ``usecs`` into the second."""
        while not self.done and (not self.offsets or self.offsets[-1] <= usecs):
            self._extend(until_offset=usecs)
        return bisect.bisect_right(self.offsets, usecs)

    # encoding, shared by every subscriber of this second
    def frames(self, mask: int, i: int, j: int) -> bytes:
        """The frames of events [i, j) for the streams in ``mask`` (1 trades, 2 BBO, 4 book)."""
        enc = self._encoded.get(mask)
        if enc is None:
            enc = self._encoded[mask] = []
        if len(enc) < j:
            self._encode(mask, enc, j)
        return b"".join(enc[i:j])

    def _encode(self, mask: int, enc: list[bytes], j: int) -> None:
        second = self.second
        if self._encoder is None:
            from simulator.wire import HotEncoder, source_ssboe_field, ssboe_field

            self._encoder = HotEncoder(self.inst.symbol, self.inst.exchange, self.inst.price)
            self._tprefix = ssboe_field(second) + T_USECS
            self._source_prefix = source_ssboe_field(second) + T_SOURCE_USECS
            # a trade's gateway stamp is in this second or, late in it, the next
            self._gateway_prefix = (self._tprefix, ssboe_field(second + 1) + T_USECS)
        e = self._encoder
        tprefix, source_prefix, gateway_prefix = self._tprefix, self._source_prefix, self._gateway_prefix
        clock = clock_table(self.inst.key, second) if mask & 1 else None
        want_lt, want_bbo, want_book = mask & 1, mask & 2, mask & 4
        lt, bbo_, book_ = e.last_trade, e.bbo, e.book
        events = self.events
        append = enc.append
        for k in range(len(enc), j):
            off, trade, bbo, groups = events[k]
            uf = varint(off)
            tf = tprefix + uf
            if want_lt and trade is not None:
                nsecs, gs, gu = stamps_in(clock, second, off)
                out = lt(b"".join((source_prefix, uf, T_SOURCE_NSECS, varint(nsecs), gateway_prefix[gs - second],
                                   varint(gu))), trade)
            else:
                out = b""
            if want_bbo and bbo is not None:
                out += bbo_(tf, bbo)
            if want_book:
                if len(groups) == 1:
                    out += book_(tf, SOLO, groups[0])
                else:
                    kinds = (BEGIN, END) if len(groups) == 2 else (BEGIN, MIDDLE, END)
                    for kind, group in zip(kinds, groups, strict=True):
                        out += book_(tf, kind, group)
            append(out)

    def counts(self, mask: int, i: int, j: int) -> tuple[int, int, int]:
        """Messages of events [i, j) per stream in ``mask``: (last_trade, bbo, order_book)."""
        d = self.packed_counts[j] - self.packed_counts[i]
        return (
            d & _FIELD if mask & 1 else 0,
            (d >> 21) & _FIELD if mask & 2 else 0,
            d >> 42 if mask & 4 else 0,
        )

    def trades(self):
        """(usecs, px, size, aggressor, volume) of every trade in the second."""
        self.complete()
        return [(ev[0], *ev[1]) for ev in self.events if ev[1] is not None]

    def trade_times(self):
        """(usecs, source_nsecs, gateway ssboe, gateway usecs) of every trade in the second."""
        self.complete()
        key, second = self.inst.key, self.second
        return [(ev[0], *trade_stamps(key, second, ev[0])) for ev in self.events if ev[1] is not None]


@dataclass
class BookState:
    """A book at one instant, as a subscriber's snapshot shows it."""

    bids: dict[int, int]
    asks: dict[int, int]
    as_of: tuple[int, int]  # (ssboe, usecs) of the last event applied
    bid_orders: dict[int, int]  # price -> resting orders
    ask_orders: dict[int, int]

    def bbo(self) -> tuple[int, int, int, int, int, int]:
        """(bid, bid size, ask, ask size, bid orders, ask orders), as the tape's BBO events carry it."""
        b = max(self.bids)
        a = min(self.asks)
        return b, self.bids[b], a, self.asks[a], self.bid_orders[b], self.ask_orders[a]


def book_at(market: Market, inst: Instrument, second: int, index: int) -> BookState:
    """The book after the first ``index`` events of ``second`` (while closed: as the market closed)."""
    if not inst.is_open(second):
        second, index = inst.next_open_second(second), 0
    anchor = market.anchor(inst, second)
    bids, asks = anchor.levels(BID), anchor.levels(ASK)
    counts = {side: {px: len(market.order_sizes(inst, side, px, q)) for px, q in levels.items()}
              for side, levels in ((BID, bids), (ASK, asks))}
    # The book at a second's start is the previous open second's last (roll) event.
    as_of = (inst.last_open_second_before(second) or second - 1, ROLL_OFFSET)
    tape = market.tape(inst, second)
    tape.ensure(index)
    for off, _trade, _bbo, groups in tape.events[:index]:
        for group in groups:
            for side, px, size, _reason, orders in group:
                levels, level_orders = (bids, counts[BID]) if side == BID else (asks, counts[ASK])
                if size:
                    levels[px] = size
                    level_orders[px] = orders
                else:
                    levels.pop(px, None)
                    level_orders.pop(px, None)
        as_of = (second, off)
    return BookState(bids, asks, as_of, counts[BID], counts[ASK])


def last_trade_before(market: Market, inst: Instrument, second: int, index: int, lookback: int = 10):
    """(ssboe, usecs, px, size, aggressor, volume) of the latest trade before event ``index``, or None."""
    tape = market.tape(inst, second)
    tape.ensure(index)
    events = tape.events
    for k in range(min(index, len(events)) - 1, -1, -1):
        if events[k][1] is not None:
            return (second, events[k][0], *events[k][1])
    s = second
    for _ in range(lookback):  # open seconds back, across a close
        s = inst.last_open_second_before(s)
        if s is None:
            return None
        t = market.tape(inst, s, cache=False).complete()
        for k in range(len(t.events) - 1, -1, -1):
            if t.events[k][1] is not None:
                return (s, t.events[k][0], *t.events[k][1])
    return None


def product_of(code: str, exchange: str) -> Product:
    """The catalogue product ``code`` on ``exchange``; SymbolError with a sentence otherwise."""
    exchange = normalize_exchange(exchange)
    product = PRODUCTS.get(code.strip().upper()) if isinstance(code, str) else None
    if product is None or product.exchange != exchange:
        raise SymbolError(f"no product '{code}' on {exchange}")
    return product
