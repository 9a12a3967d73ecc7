"""Continuous symbols (ES.c.0): which real contract serves each instant of a time range.

ES.c.0 is, at each instant, the contract `rdc_common.calendar.front_contract` names (the function the
collector rolls by, so both agree to the second); ES.c.n is the n-th contract after it in the
product's listing cycle. A range is split at the roll instants into per-contract segments that are
disjoint and in time order, so rows read segment by segment are in (timestamp, id) order overall.
Pure apart from the calendar's schedule cache (it imports pandas only when no schedule is cached or
bundled: rdc_common/calendar.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rdc_common import calendar
from rdc_common.products import Continuous, Contract, Product, next_contract

from .errors import BadRequest

UTC = dt.UTC


@dataclass(frozen=True)
class Segment:
    """`symbol`'s rows in [start, end) stand for the requested symbol there."""

    symbol: str
    start: dt.datetime
    end: dt.datetime


def _unavailable(cont: Continuous, when: dt.datetime) -> BadRequest:
    code = cont.product.code
    return BadRequest(f"{cont.symbol} needs the trading calendar of {code} around {when.year}, which this "
                      f"deployment cannot provide; ask for the contract symbols themselves (GET /api/rolls/{code} "
                      f"lists the rolls)", title="Calendar unavailable")


def _ranked(cont: Continuous, front: Contract) -> Contract:
    c = front
    for _ in range(cont.rank):
        c = next_contract(c)
    return c


def contract_at(cont: Continuous, at: dt.datetime) -> Contract:
    """The contract `cont` stands for at instant `at`."""
    try:
        return _ranked(cont, calendar.front_contract(cont.product, at.timestamp()))
    except (ValueError, ImportError, OverflowError):  # a year the calendar cannot answer for
        raise _unavailable(cont, at) from None


def segments(cont: Continuous, start: dt.datetime, end: dt.datetime) -> list[Segment]:
    """[start, end) split at the roll instants, oldest first; each piece names its contract."""
    out: list[Segment] = []
    t = start
    p = cont.product
    try:
        while t < end:
            front = calendar.front_contract(p, t.timestamp())
            # front_contract names the contract whose roll instant is the first after t: front until then.
            rolls_at = dt.datetime.fromtimestamp(calendar.roll_instant(p, front.roll_date), UTC)
            stop = min(end, rolls_at)
            out.append(Segment(_ranked(cont, front).symbol, t, stop))
            t = stop
    except (ValueError, ImportError, OverflowError):
        raise _unavailable(cont, t) from None
    return out


def next_roll(product: Product, now: dt.datetime) -> tuple[Contract, Contract, dt.datetime]:
    """(front month at `now`, the contract it rolls to, when) from the catalogue and the calendar."""
    cont = Continuous(product, 0)
    front = contract_at(cont, now)
    try:
        at = dt.datetime.fromtimestamp(calendar.roll_instant(product, front.roll_date), UTC)
    except (ValueError, ImportError, OverflowError):
        raise _unavailable(cont, now) from None
    return front, next_contract(front), at
