"""The futures catalogue: real contract specifications, symbol grammar and roll rules.

Pure functions only. The collector uses it to infer exchanges, the API to validate
symbols, the simulator as its reference data.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTH_CODES = "FGHJKMNQUVXZ"
QUARTERLY = "HMUZ"
MONTHLY = MONTH_CODES
EXCHANGES = ("CME", "CBOT", "NYMEX", "COMEX", "CFE")

# Product code (1-3 chars, may start with a digit as in 6E), month code, one-digit year.
_SYMBOL_RE = re.compile(r"^([A-Z0-9]{1,3}?)([FGHJKMNQUVXZ])([0-9])$")
_PRODUCT_RE = re.compile(r"^[A-Z0-9]{1,3}$")
# Databento's continuous-contract notation, calendar roll: product code, ".c.", rank (ES.c.0 is the
# front month, ES.c.1 the contract after it). Matched upper-cased; shown with a lower-case "c".
_CONTINUOUS_RE = re.compile(r"^([A-Z0-9]{1,3})\.C\.([0-9])$")


class SymbolError(ValueError):
    """A symbol or exchange a user typed that the product cannot accept."""


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    exchange: str
    tick_size: float
    point_value: float
    months: str  # listed contract months, as month codes
    roll: str  # roll rule name, see _roll_date
    base_price: float  # typical price level, the simulator's anchor
    # Trading hours: a pandas_market_calendars calendar (see rdc_common/calendar.py). Each is the
    # library's own calendar for the product's group; MGC has none of its own and follows gold
    # (CMEGlobex_GC), whose Globex hours and holidays it shares.
    calendar: str

    @property
    def tick_value(self) -> float:
        return self.tick_size * self.point_value


PRODUCTS: dict[str, Product] = {
    p.code: p
    for p in (
        Product("ES", "E-mini S&P 500", "CME", 0.25, 50.0, QUARTERLY, "equity", 6000.0, "CME_Equity"),
        Product("MES", "Micro E-mini S&P 500", "CME", 0.25, 5.0, QUARTERLY, "equity", 6000.0, "CME_Equity"),
        Product("NQ", "E-mini Nasdaq-100", "CME", 0.25, 20.0, QUARTERLY, "equity", 21000.0, "CME_Equity"),
        Product("MNQ", "Micro E-mini Nasdaq-100", "CME", 0.25, 2.0, QUARTERLY, "equity", 21000.0, "CME_Equity"),
        Product("RTY", "E-mini Russell 2000", "CME", 0.10, 50.0, QUARTERLY, "equity", 2300.0, "CME_Equity"),
        Product("YM", "E-mini Dow ($5)", "CBOT", 1.0, 5.0, QUARTERLY, "equity", 44000.0, "CBOT_Equity"),
        Product("MYM", "Micro E-mini Dow", "CBOT", 1.0, 0.5, QUARTERLY, "equity", 44000.0, "CBOT_Equity"),
        Product("ZN", "10-Year T-Note", "CBOT", 1 / 64, 1000.0, QUARTERLY, "treasury", 111.0, "CBOT_Bond"),
        Product("ZB", "U.S. Treasury Bond", "CBOT", 1 / 32, 1000.0, QUARTERLY, "treasury", 116.0, "CBOT_Bond"),
        Product("ZF", "5-Year T-Note", "CBOT", 1 / 128, 1000.0, QUARTERLY, "treasury", 108.0, "CBOT_Bond"),
        Product("6E", "Euro FX", "CME", 0.00005, 125000.0, QUARTERLY, "fx", 1.08, "CMEGlobex_FX"),
        Product("6J", "Japanese Yen", "CME", 0.0000005, 12500000.0, QUARTERLY, "fx", 0.0066, "CMEGlobex_FX"),
        Product("6B", "British Pound", "CME", 0.0001, 62500.0, QUARTERLY, "fx", 1.27, "CMEGlobex_FX"),
        Product("CL", "Crude Oil WTI", "NYMEX", 0.01, 1000.0, MONTHLY, "energy", 70.0, "CMEGlobex_CL"),
        Product("MCL", "Micro WTI Crude Oil", "NYMEX", 0.01, 100.0, MONTHLY, "energy", 70.0, "CMEGlobex_MCL"),
        Product("NG", "Henry Hub Natural Gas", "NYMEX", 0.001, 10000.0, MONTHLY, "energy", 3.2, "CMEGlobex_NG"),
        Product("GC", "Gold", "COMEX", 0.10, 100.0, "GJMQVZ", "metal", 2650.0, "CMEGlobex_GC"),
        Product("MGC", "Micro Gold", "COMEX", 0.10, 10.0, "GJMQVZ", "metal", 2650.0, "CMEGlobex_GC"),
        Product("SI", "Silver", "COMEX", 0.005, 5000.0, "HKNUZ", "metal", 31.0, "CMEGlobex_SI"),
        Product("HG", "Copper", "COMEX", 0.0005, 25000.0, "HKNUZ", "metal", 4.2, "CMEGlobex_HG"),
        Product("ZC", "Corn", "CBOT", 0.25, 50.0, "HKNUZ", "grain", 430.0, "CMEGlobex_Grains"),
        Product("ZS", "Soybeans", "CBOT", 0.25, 50.0, "FHKNQUX", "grain", 1000.0, "CMEGlobex_Oilseeds"),
        Product("ZW", "Chicago SRW Wheat", "CBOT", 0.25, 50.0, "HKNUZ", "grain", 550.0, "CMEGlobex_Grains"),
    )
}

DEFAULT_PRODUCTS = ("ES", "NQ", "CL", "GC")


@dataclass(frozen=True)
class Contract:
    symbol: str
    product: Product
    month_code: str
    year: int

    @property
    def exchange(self) -> str:
        return self.product.exchange

    @property
    def month(self) -> int:
        return MONTH_CODES.index(self.month_code) + 1

    @property
    def expiry(self) -> dt.date:
        return _expiry(self.product, self.year, self.month)

    @property
    def roll_date(self) -> dt.date:
        return _roll_date(self.product, self.year, self.month)


def normalize_symbol(raw: str) -> str:
    """Upper-case and validate the shape of a contract symbol such as ``ESZ6``."""
    if not isinstance(raw, str):
        raise SymbolError("symbol must be a string such as ESZ6")
    symbol = raw.strip().upper()
    if not _SYMBOL_RE.match(symbol):
        raise SymbolError(
            f"'{raw[:32]}' is not a futures contract symbol: use product code + month code "
            f"({' '.join(MONTH_CODES)}) + one-digit year, for example ESZ6"
        )
    return symbol


def split_symbol(symbol: str) -> tuple[str, str, int]:
    """``ESZ6`` -> ("ES", "Z", 6). The symbol must already be normalized."""
    m = _SYMBOL_RE.match(symbol)
    if not m:
        raise SymbolError(f"'{symbol}' is not a futures contract symbol such as ESZ6")
    return m.group(1), m.group(2), int(m.group(3))


def normalize_exchange(raw: str) -> str:
    if not isinstance(raw, str) or raw.strip().upper() not in EXCHANGES:
        shown = raw[:32] if isinstance(raw, str) else type(raw).__name__
        raise SymbolError(f"unknown exchange '{shown}': use one of {', '.join(EXCHANGES)}")
    return raw.strip().upper()


def is_product_code(raw: str) -> bool:
    return bool(_PRODUCT_RE.match(raw.strip().upper())) and raw.strip().upper() in PRODUCTS


@dataclass(frozen=True)
class Continuous:
    """A continuous symbol such as ES.c.0: at each instant, the product's contract of that rank."""

    product: Product
    rank: int  # 0: the front month; n: the n-th contract after it in the product's listing cycle

    @property
    def symbol(self) -> str:
        return f"{self.product.code}.c.{self.rank}"


def looks_continuous(raw: str) -> bool:
    """Whether `raw` is written in the continuous notation (product code, .c., rank), known product or not."""
    return isinstance(raw, str) and bool(_CONTINUOUS_RE.match(raw.strip().upper()))


def parse_continuous(raw: str) -> Continuous:
    """ES.c.0 (any case) as a Continuous; SymbolError with a sentence when it is not one of the catalogue's."""
    m = _CONTINUOUS_RE.match(raw.strip().upper()) if isinstance(raw, str) else None
    if m is None:
        raise SymbolError(f"'{str(raw)[:32]}' is not a continuous symbol: use product code + .c. + rank, "
                          f"for example ES.c.0 (the front month) or ES.c.1 (the contract after it)")
    product = PRODUCTS.get(m.group(1))
    if product is None:
        raise SymbolError(f"'{raw.strip()[:32]}': continuous symbols exist for the catalogue's products only "
                          f"({', '.join(sorted(PRODUCTS))}), not '{m.group(1)}'")
    return Continuous(product, int(m.group(2)))


def next_contract(c: Contract) -> Contract:
    """The contract after `c` in its product's listing cycle (ESZ6 -> ESH7)."""
    months = c.product.months
    later = [code for code in months if MONTH_CODES.index(code) > MONTH_CODES.index(c.month_code)]
    code, year = (later[0], c.year) if later else (months[0], c.year + 1)
    return Contract(f"{c.product.code}{code}{year % 10}", c.product, code, year)


def infer_exchange(symbol: str) -> str:
    """Exchange of a contract or product code, from the catalogue (ES -> CME, GC -> COMEX)."""
    code = symbol if symbol in PRODUCTS else split_symbol(symbol)[0]
    product = PRODUCTS.get(code)
    if product is None:
        raise SymbolError(
            f"cannot infer the exchange of product '{code}': pass it explicitly "
            f"(one of {', '.join(EXCHANGES)})"
        )
    return product.exchange


def resolve_year(year_digit: int, today: dt.date) -> int:
    """The calendar year a one-digit contract year means: the nearest one not long past."""
    decade = today.year - today.year % 10
    year = decade + year_digit
    # Early in a decade a high digit is the last decade's (ESZ9 on 2030-01-02 is December 2029, which
    # expired days ago, not December 2039); a year more than one back is the next decade's.
    if year - 10 >= today.year - 1:
        year -= 10
    if year < today.year - 1:
        year += 10
    return year


def check_month(symbol: str) -> None:
    """SymbolError when the contract's product is in the catalogue but does not list its month."""
    code, month_code, _ = split_symbol(symbol)
    product = PRODUCTS.get(code)
    if product is not None and month_code not in product.months:
        raise SymbolError(
            f"{product.name} ({code}) lists only the months {' '.join(product.months)}"
        )


def contract(symbol: str, today: dt.date) -> Contract:
    """A catalogue contract from its symbol, its one-digit year read as the nearest year to `today`
    (the clock's date: rdc_common.clock); SymbolError when the product is unknown."""
    symbol = normalize_symbol(symbol)
    code, month_code, year_digit = split_symbol(symbol)
    product = PRODUCTS.get(code)
    if product is None:
        raise SymbolError(f"unknown product '{code}'")
    if month_code not in product.months:
        raise SymbolError(
            f"{product.name} ({code}) lists only the months {' '.join(product.months)}"
        )
    return Contract(symbol, product, month_code, resolve_year(year_digit, today))


def listed_contracts(product: Product, today: dt.date, months_ahead: int = 13) -> list[Contract]:
    """Contracts not yet expired whose month falls within ``months_ahead`` of today, nearest first."""
    out: list[Contract] = []
    year, month = today.year, today.month
    for i in range(months_ahead + 12):
        m = (month - 1 + i) % 12 + 1
        y = year + (month - 1 + i) // 12
        code = MONTH_CODES[m - 1]
        if code not in product.months:
            continue
        c = Contract(f"{product.code}{code}{y % 10}", product, code, y)
        if c.expiry < today:
            continue
        if i > months_ahead and len(out) >= 2:
            break
        out.append(c)
    return out


def front_month(product: Product, today: dt.date) -> Contract:
    """The contract most traded on ``today`` under the product's roll rule."""
    for c in listed_contracts(product, today, months_ahead=24):
        if today < c.roll_date:
            return c
    raise AssertionError("every product lists a contract within 24 months")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 7 * (n - 1))


def _business_days_before(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _last_business_day(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return _business_days_before(nxt, 1)


def _prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _expiry(product: Product, year: int, month: int) -> dt.date:
    rule = product.roll
    if rule == "equity":  # third Friday of the contract month
        return _nth_weekday(year, month, 4, 3)
    if rule == "fx":  # two business days before the third Wednesday
        return _business_days_before(_nth_weekday(year, month, 2, 3), 2)
    if rule == "treasury":  # seventh business day before the last business day
        return _business_days_before(_last_business_day(year, month), 7)
    if rule == "energy":  # three business days before the 25th of the prior month
        py, pm = _prev_month(year, month)
        return _business_days_before(dt.date(py, pm, 25), 3)
    # metals and grains: third-last business day of the contract month
    return _business_days_before(_last_business_day(year, month), 2)


def _roll_date(product: Product, year: int, month: int) -> dt.date:
    """First day on which the next contract is the front month."""
    rule = product.roll
    expiry = _expiry(product, year, month)
    if rule in ("equity", "fx"):  # volume moves about eight days before expiry
        return expiry - dt.timedelta(days=8)
    if rule == "energy":  # a few days before last trade
        return _business_days_before(expiry, 2)
    # deliverable contracts roll before first notice (last business day of the prior month)
    py, pm = _prev_month(year, month)
    return _business_days_before(_last_business_day(py, pm), 3)
