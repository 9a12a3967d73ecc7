"""History plant replays: the trades and time bars the market produced, cut into gateway-sized pages.

async_rithmic asks for the next page from the second after the last row it received, so a page
never splits a second: it ends at a whole-second (tick replay) or whole-bar (time bars) boundary.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from simulator.market import SELL, Instrument, Market

PAGE_ROWS = 10_000  # rows per response, about what the real gateway returns
PAGE_SECONDS = 3_600  # market time one time-bar page may scan, so a page never takes minutes


async def _complete(market: Market, inst: Instrument, second: int):
    """The finished tape of ``second``, generated in slices so other connections keep being served."""
    tape = market.tape(inst, second, cache=False)
    while True:
        if tape.generate_some():
            return tape
        await asyncio.sleep(0)  # yield between slices of a busy second


def open_seconds(inst: Instrument, start: int, end: int):
    """The seconds in [start, end) when the product's market is open (closed ones hold nothing)."""
    for lo, hi in inst.hours.open_intervals(start, end):
        yield from range(-int(-lo // 1), -int(-hi // 1))


async def tick_page(market: Market, inst: Instrument, start: int, finish: int, now: float, limit: int = PAGE_ROWS):
    """Trades (ssboe, usecs, px, size, aggressor) from [start, finish), up to now, for one page.

    The time is the trade's exchange time, the live LastTrade's source_ssboe/source_usecs; a
    ResponseTickBarReplay has no field for its nanoseconds or the gateway's stamp.

    Holds whole seconds only: at least one second with trades, then more while under ``limit``.
    """
    rows: list[tuple] = []
    last = min(finish, int(now) + 1)
    now_second, now_usecs = int(now), int((now - int(now)) * 1_000_000)
    for second in open_seconds(inst, start, last):
        tape = await _complete(market, inst, second)
        trades = [
            (second, ev[0], ev[1][0], ev[1][1], ev[1][2])
            for ev in tape.events
            if ev[1] is not None and (second < now_second or ev[0] <= now_usecs)
        ]
        if rows and len(rows) + len(trades) > limit:
            break
        rows += trades
    return rows


@dataclass
class Bar:
    marker: int  # the bar's first second
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    bid_volume: int = 0
    ask_volume: int = 0
    num_trades: int = 0


async def time_bar_page(
    market: Market, inst: Instrument, period: int, start: int, finish: int, now: float, limit: int = PAGE_ROWS
) -> list[Bar]:
    """Bars of ``period`` seconds starting in [start, finish), aligned to the epoch, up to now.

    Bars without trades are left out, as the gateway does.
    """
    bars: list[Bar] = []
    first = -(-start // period) * period
    now_second, now_usecs = int(now), int((now - int(now)) * 1_000_000)
    scanned = 0
    bar_start = first
    while bar_start < finish and bar_start <= now_second:
        if bars and (len(bars) >= limit or scanned >= PAGE_SECONDS):
            break
        if not inst.is_open(bar_start):  # a close: skip to the bar the reopening falls in
            reopen = inst.next_open_second(bar_start)
            if reopen >= bar_start + period:
                bar_start = reopen - (reopen - first) % period
                continue
        bar = None
        for second in open_seconds(inst, bar_start, min(bar_start + period, now_second + 1)):
            tape = await _complete(market, inst, second)
            scanned += 1
            for ev in tape.events:
                trade = ev[1]
                if trade is None or (second == now_second and ev[0] > now_usecs):
                    continue
                px, size, aggressor = trade[0], trade[1], trade[2]
                if bar is None:
                    bar = Bar(bar_start, px, px, px, px)
                bar.high = max(bar.high, px)
                bar.low = min(bar.low, px)
                bar.close = px
                bar.volume += size
                bar.num_trades += 1
                if aggressor == SELL:
                    bar.bid_volume += size
                else:
                    bar.ask_volume += size
        if bar is not None:
            bars.append(bar)
        bar_start += period
    return bars
