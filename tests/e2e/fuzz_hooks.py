"""Schemathesis hooks for tests/e2e/test_fuzz.py: the API's rules that OpenAPI 3.0 cannot state.

Loaded by `schemathesis run` through SCHEMATHESIS_HOOKS. Only schema-valid ("positive") cases are
touched, and only where a rule ties one value to another or to stored state, so that a positive case
is one the API documents as acceptable:

- `cursor` is an opaque token the API issued (paging tests cover it): no generator can forge one.
- `start` and `end` together must be in order and at most the maximum range apart.
- a subscription's month must be one the product lists, and its exchange the product's own (or, for
  a product the catalogue does not know, given at all); a product code (ES) must be sent with its own
  exchange or none.

Negative cases go out exactly as generated, so every check still sees every kind of bad input.
"""

from __future__ import annotations

import datetime as dt
import re

import schemathesis
from schemathesis.generation import GenerationMode

from rdc_common.products import PRODUCTS, SymbolError, is_product_code, normalize_symbol, split_symbol

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NUMBER = re.compile(r"^[0-9]{1,14}(\.[0-9]{1,9})?$")


def _instant(text: str) -> dt.datetime | None:
    """The instant a schema-valid time names, or None when it sits at the edge of what a datetime holds."""
    try:
        if _EPOCH_NUMBER.match(text):
            value = float(text)
            return EPOCH + (dt.timedelta(milliseconds=value) if value >= 1e11 else dt.timedelta(seconds=value))
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def _ordered_window(query: dict) -> None:
    start = _instant(str(query["start"]))
    try:
        end = start + dt.timedelta(hours=1) if start is not None else None
    except OverflowError:
        end = None
    if end is None:
        del query["end"]  # start alone is always a valid window
    else:
        query["end"] = end.isoformat()


def _catalogue_subscription(case) -> None:
    raw = str(case.path_parameters["symbol"])
    if is_product_code(raw):
        body = case.body if isinstance(case.body, dict) else {}
        exchange = PRODUCTS[raw.strip().upper()].exchange
        if body.get("exchange") not in (None, exchange):
            case.body = {**body, "exchange": exchange}
        return
    try:
        symbol = normalize_symbol(str(case.path_parameters["symbol"]))
        code, month, year = split_symbol(symbol)
    except SymbolError:
        return
    body = case.body if isinstance(case.body, dict) else {}
    product = PRODUCTS.get(code)
    if product is None:
        if body.get("exchange") is None:
            case.body = {"exchange": "CME"}
            case.media_type = "application/json"
        return
    if month not in product.months:
        case.path_parameters["symbol"] = f"{code}{product.months[0]}{year}"
    if body.get("exchange") not in (None, product.exchange):
        case.body = {**body, "exchange": product.exchange}


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.query, dict) and case.query:
        case.query.pop("cursor", None)
        if "start" in case.query and "end" in case.query:
            _ordered_window(case.query)
    if case.path == "/api/subscribe/{symbol}" and case.path_parameters:
        _catalogue_subscription(case)
    return case

