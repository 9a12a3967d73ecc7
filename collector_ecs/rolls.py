"""When a followed product rolls and when a contract stops trading, decided from the catalogue's
calendar (rdc_common.calendar) and an instant: pure functions the subscription manager and its
roll scheduler call, so every decision can be checked at any pinned instant with a ManualClock.

A product followed (`SYMBOLS=ES`, `POST /api/subscribe/ES`) means its front month for as long as the
collector runs. The front month at instant t is `front_contract(product, t)`, the same function the
API's continuous symbols (ES.c.0) use, so both agree to the second. The new front month is subscribed
a little before its roll instant (in the halt before the roll date's session opens: `lead_start`),
so it is recording when that session's first trade comes; the old one is kept until its expiry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rdc_common.calendar import contract_at, expiry_instant, front_contract, hours, roll_instant
from rdc_common.products import PRODUCTS, Contract, Product, SymbolError, listed_contracts

UTC = dt.UTC
ROLL_LEAD_S = 60.0  # clock seconds before the roll instant the new front month is subscribed
ROLL_LEAD_REAL_S = 5.0  # ...and at least this much real time before it (a fast simulated clock)


@dataclass(frozen=True)
class Roll:
    """One row of the `rolls` table: `product` follows `to_symbol` from instant `at` on."""

    product: str
    exchange: str
    from_symbol: str | None  # None: the first front month the product was followed with
    to_symbol: str
    at: float


def previous_contract(product: Product, c: Contract) -> Contract:
    """The contract that was front month just before `c` (the listed one expiring last before it)."""
    start = c.expiry - dt.timedelta(days=400)
    earlier = [x for x in listed_contracts(product, start, months_ahead=24) if x.expiry < c.expiry]
    return earlier[-1]


def became_front(product: Product, c: Contract) -> float:
    """The instant `c` became the product's front month: the roll instant of the contract before it."""
    return roll_instant(product, previous_contract(product, c).roll_date)


def lead_start(product: Product, roll_at: float, lead_s: float) -> float:
    """When to subscribe the contract that becomes front at `roll_at`: `lead_s` before it, but not
    before the close that precedes it (the old front's session is left to finish undisturbed)."""
    close = hours(product).prev_close(roll_at)
    start = roll_at - lead_s
    return max(start, close) if close is not None and close < roll_at else start


def due(product: Product, t: float, lead_s: float, first: bool) -> list[Roll]:
    """The rolls that must have happened by instant `t`, oldest first.

    `first`: the product has no rolls row yet, so its current front month is where following starts
    (from_symbol None, at t). Otherwise the current front month's row (from the contract before it,
    at the instant it became front): a collector that was stopped over a roll catches up with the
    same row it would have written on time. Plus the next front month once its lead has begun.
    """
    f = front_contract(product, t)
    if first:
        out = [Roll(product.code, product.exchange, None, f.symbol, t)]
    else:
        out = [Roll(product.code, product.exchange, previous_contract(product, f).symbol, f.symbol,
                    became_front(product, f))]
    r = roll_instant(product, f.roll_date)
    if t >= lead_start(product, r, lead_s):
        nxt = front_contract(product, r)
        out.append(Roll(product.code, product.exchange, f.symbol, nxt.symbol, r))
    return out


def next_roll_check(product: Product, t: float, lead_s: float) -> float:
    """The next instant after `t` at which `due` will add a roll (the next lead start)."""
    f = front_contract(product, t)
    r = roll_instant(product, f.roll_date)
    start = lead_start(product, r, lead_s)
    if t < start:
        return start
    nxt = front_contract(product, r)
    return lead_start(product, roll_instant(product, nxt.roll_date), lead_s)


def contract_expiry(symbol: str, t: float) -> float | None:
    """When `symbol` stops trading (its year read as the one nearest to t); None when the catalogue
    does not know its product (the gateway then decides)."""
    try:
        c = contract_at(symbol, t)
    except SymbolError:
        return None
    return expiry_instant(c.product, c.expiry)


def expired_reason(symbol: str, expiry: float) -> str:
    return f"{symbol} stopped trading at {dt.datetime.fromtimestamp(expiry, UTC).isoformat()}"


def catalogue_product(code: str) -> Product | None:
    return PRODUCTS.get(code)
