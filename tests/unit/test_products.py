"""The catalogue: symbol grammar, exchange inference and roll rules users rely on."""

import datetime as dt

import pytest

from rdc_common.products import PRODUCTS, SymbolError, front_month, infer_exchange, listed_contracts, normalize_symbol

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize("product,front", [("ES", "ESZ6"), ("NQ", "NQZ6"), ("YM", "YMZ6"), ("RTY", "RTYZ6"),
                                           ("ZN", "ZNZ6"), ("6E", "6EZ6"), ("CL", "CLF7"), ("GC", "GCZ6")])
def test_front_month_on_2026_11_24(product, front):
    assert front_month(PRODUCTS[product], TODAY).symbol == front


def test_equity_index_rolls_eight_days_before_third_friday():
    assert front_month(PRODUCTS["ES"], dt.date(2026, 12, 9)).symbol == "ESZ6"
    assert front_month(PRODUCTS["ES"], dt.date(2026, 12, 10)).symbol == "ESH7"


@pytest.mark.parametrize("symbol,exchange", [("ESZ6", "CME"), ("CLF7", "NYMEX"), ("GCZ6", "COMEX"),
                                             ("YMH7", "CBOT"), ("ZNZ6", "CBOT"), ("6EZ6", "CME")])
def test_exchange_inferred_from_product(symbol, exchange):
    assert infer_exchange(symbol) == exchange


@pytest.mark.parametrize("bad", ["", "ES", "ESZ", "ESZ26", "ES Z6", "ESA6", "ES;DROP", "E$Z6", "TOOLONGZ6"])
def test_malformed_symbols_rejected_with_the_grammar(bad):
    with pytest.raises(SymbolError, match="month code"):
        normalize_symbol(bad)


def test_lower_case_is_accepted_and_upper_cased():
    assert normalize_symbol(" esz6 ") == "ESZ6"


def test_listing_cycles_cover_twelve_months():
    cl = [c.symbol for c in listed_contracts(PRODUCTS["CL"], TODAY)]
    assert len(cl) >= 12 and cl[0] == "CLF7"
    gc = {c.month_code for c in listed_contracts(PRODUCTS["GC"], TODAY)}
    assert gc <= set("GJMQVZ") and len(gc) == 6
