"""Data for the research-side tests (rdc_client, the generated client, /docs): the recorded market of
the API tests plus one full UTC day of trades of another symbol, written through the collector's
own writer, with runs of equal timestamps across every page boundary (no helpers' tests here)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from tests.integration.test_api_support import build_market, fetch, tick, write_rows

UTC = dt.UTC
DAY_SYMBOL = "CLF7"
DAY_EXCHANGE = "NYMEX"
DAY_START = dt.datetime(2026, 11, 23, tzinfo=UTC)
DAY_END = DAY_START + dt.timedelta(days=1)
DAY_TRADES = 5000
PAGE = 1000  # the API's largest ticks page, what rdc_client asks for


@dataclass(frozen=True)
class Day:
    symbol: str
    start: dt.datetime
    end: dt.datetime
    trades: int  # inside [start, end)


def build_day(url: str) -> Day:
    """DAY_TRADES trades in [DAY_START, DAY_END), each with a distinct price (so a duplicate or a
    missing row cannot hide), one exactly at the start, runs of up to 40 trades sharing a timestamp
    (one straddling every PAGE boundary), plus trades just outside the day on both sides."""
    rng = random.Random(20261123)
    span_us = int((DAY_END - DAY_START).total_seconds() * 1e6)
    stamps = sorted([0] + [rng.randrange(1, span_us) for _ in range(DAY_TRADES - 1)])
    # Runs of equal timestamps: random ones, and one across each page boundary of the ascending walk.
    for i in range(0, DAY_TRADES - 40, 170):
        n = rng.randint(2, 40)
        for j in range(i + 1, min(i + n, DAY_TRADES)):
            stamps[j] = stamps[i]
    for boundary in range(PAGE, DAY_TRADES, PAGE):
        for j in range(boundary - 6, boundary + 7):
            stamps[j] = stamps[boundary - 6]
    stamps.sort()
    rows = [tick(DAY_START + dt.timedelta(microseconds=us), DAY_SYMBOL, round(60.0 + i * 0.01, 2),
                 rng.randint(1, 30), rng.choice(("BUY", "SELL", None)), backfilled=(i % 11 == 0),
                 exchange=DAY_EXCHANGE)
             for i, us in enumerate(stamps)]
    outside = [tick(DAY_START - dt.timedelta(microseconds=1), DAY_SYMBOL, 1.0, 1, "BUY", exchange=DAY_EXCHANGE),
               tick(DAY_END, DAY_SYMBOL, 2.0, 1, "SELL", exchange=DAY_EXCHANGE)]
    # Written as the collector would: live batches, and a backfilled batch written later (higher ids,
    # earlier timestamps), so id order and time order differ.
    shuffled = rows[:]
    rng.shuffle(shuffled)
    third = len(shuffled) // 3
    write_rows(url, "tick_data", shuffled[:third], shuffled[third:2 * third], outside, shuffled[2 * third:])
    return Day(DAY_SYMBOL, DAY_START, DAY_END, DAY_TRADES)


def db_ticks(url: str, symbol: str, start: dt.datetime, end: dt.datetime) -> list[tuple]:
    """(timestamp, price, volume, direction, backfilled) of [start, end) in the API's order: time, then id."""
    rows = fetch(url, 'SELECT "timestamp", price, size, aggressor, backfilled FROM tick_data WHERE symbol = $1 '
                      'AND "timestamp" >= $2 AND "timestamp" < $3 ORDER BY "timestamp", id', symbol, start, end)
    return [(r["timestamp"], r["price"], r["size"], r["aggressor"], r["backfilled"]) for r in rows]


def build_research_market(url: str, now: dt.datetime) -> tuple:
    """The API tests' recorded market (relative to `now`) and the full day; returns (market, day)."""
    return build_market(url, now), build_day(url)
