"""Reference data answers from the catalogue in rdc_common.products: front months, symbol
search, product codes, contract specifications. Pure: requests in, response field values out.
"""

from __future__ import annotations

import datetime as dt

from rdc_common.calendar import front_contract
from rdc_common.products import EXCHANGES, PRODUCTS, Contract, SymbolError, listed_contracts
from simulator.market import product_of, resolve_contract

MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_CASH_SETTLED = {"equity"}


def contract_name(c: Contract) -> str:
    return f"{c.product.name} {MONTH_NAMES[c.month - 1]} {c.year}"


def front_month_fields(code: str, exchange: str, now: float) -> dict:
    """Fields of ResponseFrontMonthContract for a product code at instant ``now``; SymbolError when unknown."""
    product = product_of(code, exchange)
    c = front_contract(product, now)
    return dict(
        symbol=product.code,
        exchange=product.exchange,
        is_front_month_symbol=True,
        symbol_name=c.symbol,
        trading_symbol=c.symbol,
        trading_exchange=c.exchange,
    )


def reference_fields(symbol: str, exchange: str, now: float) -> dict:
    """Fields of ResponseReferenceData for a listed contract; SymbolError otherwise."""
    c = resolve_contract(symbol, exchange, now)
    p = c.product
    presence = 1 | 2 | 4 | 8 | 32 | 64 | 2048 | 4096 | 8192 | 65536 | 131072 | 262144
    return dict(
        presence_bits=presence,
        symbol=c.symbol,
        exchange=c.exchange,
        exchange_symbol=c.symbol,
        symbol_name=contract_name(c),
        product_code=p.code,
        instrument_type="Future",
        expiration_date=c.expiry.strftime("%Y%m%d"),
        currency="USD",
        is_tradable="true",
        trading_symbol=c.symbol,
        trading_exchange=c.exchange,
        min_qprice_change=p.tick_size,
        min_fprice_change=p.tick_size,
        single_point_value=p.point_value,
    )


def auxiliary_fields(symbol: str, exchange: str, now: float) -> dict:
    c = resolve_contract(symbol, exchange, now)
    return dict(
        presence_bits=1 | 16,
        symbol=c.symbol,
        exchange=c.exchange,
        settlement_method="Cash" if c.product.roll in _CASH_SETTLED else "Physical",
        last_trading_date=c.expiry.strftime("%Y%m%d"),
    )


def search(text: str, exchange: str | None, product_code: str | None, pattern: int, today: dt.date) -> list[dict]:
    """Listed contracts matching ``text`` (pattern 1 EQUALS, otherwise CONTAINS), nearest first."""
    needle = (text or "").strip().upper()
    out = []
    for p in PRODUCTS.values():
        if exchange and p.exchange != exchange.strip().upper():
            continue
        if product_code and p.code != product_code.strip().upper():
            continue
        for c in listed_contracts(p, today):
            name = contract_name(c).upper()
            if pattern == 1:
                hit = needle in (c.symbol, p.code)
            else:
                hit = needle in c.symbol or needle in name
            if hit:
                out.append(
                    dict(
                        symbol=c.symbol,
                        exchange=c.exchange,
                        symbol_name=contract_name(c),
                        product_code=p.code,
                        instrument_type="Future",
                        expiration_date=c.expiry.strftime("%Y%m%d"),
                    )
                )
    return out


def product_codes(exchange: str) -> list[dict]:
    exchange = (exchange or "").strip().upper()
    if exchange not in EXCHANGES:
        raise SymbolError(f"exchange '{exchange}' not found: use one of {', '.join(EXCHANGES)}")
    return [
        dict(exchange=p.exchange, product_code=p.code, symbol_name=p.name, timezone_time_of_interest="America/Chicago")
        for p in PRODUCTS.values()
        if p.exchange == exchange
    ]
