"""Continuous symbols in the API, pure parts: the grammar, the per-contract segments at pinned instants
(a roll, an early close, DST, the decade wrap, a year end), what /openapi.json documents, and the
calendar a Lambda packaged without pandas reads."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rdc_common import calendar
from rdc_common.products import PRODUCTS, parse_continuous

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

from chalicelib import continuous, params  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.errors import BadRequest  # noqa: E402
from chalicelib.openapi import document  # noqa: E402

pytestmark = pytest.mark.unit

UTC = dt.UTC
REPO = Path(__file__).resolve().parents[2]


def t(*parts) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def segs(symbol: str, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    return [(s.symbol, s.start, s.end) for s in continuous.segments(parse_continuous(symbol), start, end)]


# -- grammar ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, symbol", [("ES.c.0", "ES.c.0"), ("es.c.0", "ES.c.0"), ("Es.C.1", "ES.c.1"),
                                         (" cl.c.0 ", "CL.c.0"), ("6e.c.2", "6E.c.2"), ("esz6", "ESZ6")])
def test_data_routes_accept_contracts_and_continuous_symbols(raw, symbol):
    assert params.parse_data_symbol(raw) == symbol


@pytest.mark.parametrize("raw, says", [("XX.c.0", "catalogue"), ("ES.c.10", "ESZ6"), ("ES.v.0", "ES.c.0"),
                                       ("ES", "ES.c.0"), ("", "ESZ6")])
def test_bad_symbols_say_what_is_accepted(raw, says):
    with pytest.raises(BadRequest, match=re.escape(says)):
        params.parse_data_symbol(raw)


def test_subscriptions_take_contracts_and_products_but_not_continuous_symbols():
    assert params.parse_subscription_symbol("esz6") == ("ESZ6", "contract")
    assert params.parse_subscription_symbol("es") == ("ES", "product")
    assert params.subscription_exchange("GC", None) == "COMEX"
    with pytest.raises(BadRequest, match="subscribe ES"):
        params.parse_subscription_symbol("ES.c.0")
    with pytest.raises(BadRequest, match="catalogue product"):
        params.parse_subscription_symbol("XYZ")
    with pytest.raises(BadRequest, match="trades on CME"):
        params.subscription_exchange("ES", "CBOT")


# -- segments at pinned instants ----------------------------------------------------------

def test_the_es_roll_splits_a_range_at_17_00_chicago():
    assert segs("ES.c.0", t(2026, 12, 9, 22, 55), t(2026, 12, 9, 23, 5)) == [
        ("ESZ6", t(2026, 12, 9, 22, 55), t(2026, 12, 9, 23)), ("ESH7", t(2026, 12, 9, 23), t(2026, 12, 9, 23, 5))]
    assert segs("ES.c.1", t(2026, 12, 9, 22, 55), t(2026, 12, 9, 23, 5)) == [
        ("ESH7", t(2026, 12, 9, 22, 55), t(2026, 12, 9, 23)), ("ESM7", t(2026, 12, 9, 23), t(2026, 12, 9, 23, 5))]
    # Ranges ending at, or starting at, the roll instant touch one contract only.
    assert segs("ES.c.0", t(2026, 12, 9, 22), t(2026, 12, 9, 23)) == [("ESZ6", t(2026, 12, 9, 22), t(2026, 12, 9, 23))]
    assert segs("ES.c.0", t(2026, 12, 9, 23), t(2026, 12, 9, 23, 0, 0, 1)) == [
        ("ESH7", t(2026, 12, 9, 23), t(2026, 12, 9, 23, 0, 0, 1))]
    instant = t(2026, 12, 9, 22, 59, 59, 999999)
    assert continuous.contract_at(parse_continuous("ES.c.0"), instant).symbol == "ESZ6"
    assert continuous.contract_at(parse_continuous("ES.c.0"), t(2026, 12, 9, 23)).symbol == "ESH7"


def test_an_early_close_and_a_year_end_are_no_roll():
    assert segs("ES.c.0", t(2026, 12, 24), t(2027, 1, 5)) == [("ESH7", t(2026, 12, 24), t(2027, 1, 5))]


def test_a_year_of_es_has_four_rolls_at_17_00_chicago_standard_or_daylight():
    got = segs("ES.c.0", t(2027, 1, 1), t(2028, 1, 1))
    assert got == [("ESH7", t(2027, 1, 1), t(2027, 3, 10, 23)), ("ESM7", t(2027, 3, 10, 23), t(2027, 6, 9, 22)),
                   ("ESU7", t(2027, 6, 9, 22), t(2027, 9, 8, 22)), ("ESZ7", t(2027, 9, 8, 22), t(2027, 12, 8, 23)),
                   ("ESH8", t(2027, 12, 8, 23), t(2028, 1, 1))]


def test_the_decade_wraps_in_continuous_symbols():
    assert segs("ES.c.0", t(2029, 12, 12), t(2029, 12, 20)) == [
        ("ESZ9", t(2029, 12, 12), t(2029, 12, 12, 23)), ("ESH0", t(2029, 12, 12, 23), t(2029, 12, 20))]
    assert continuous.contract_at(parse_continuous("ES.c.0"), t(2029, 12, 20, 15)).symbol == "ESH0"
    assert continuous.contract_at(parse_continuous("ES.c.1"), t(2029, 12, 20, 15)).symbol == "ESM0"
    front, after, at = continuous.next_roll(parse_continuous("ES.c.0").product, t(2029, 12, 20, 15))
    assert (front.symbol, front.year, after.symbol, after.year, at) == ("ESH0", 2030, "ESM0", 2030,
                                                                        t(2030, 3, 6, 23))


def test_segments_are_contiguous_and_monthly_products_roll_every_month():
    got = continuous.segments(parse_continuous("CL.c.0"), t(2026, 11, 1), t(2027, 11, 1))
    assert len(got) == 13
    assert all(a.end == b.start for a, b in zip(got, got[1:], strict=False))
    assert got[0].start == t(2026, 11, 1) and got[-1].end == t(2027, 11, 1)
    assert len({s.symbol for s in got}) == 13


def test_an_instant_the_calendar_cannot_answer_is_a_clear_400():
    with pytest.raises(BadRequest, match="ask for the contract symbols") as err:
        continuous.segments(parse_continuous("ES.c.0"), t(9999, 12, 30), t(9999, 12, 31))
    assert err.value.title == "Calendar unavailable"


# -- OpenAPI --------------------------------------------------------------------------------

def test_the_document_describes_continuous_symbols_products_and_rolls():
    doc = document(Settings())
    params_ = doc["components"]["parameters"]
    symbol = re.compile(params_["symbol"]["schema"]["pattern"])
    assert all(symbol.match(s) for s in ("ESZ6", "ES.c.0", "es.c.1", "MNQ.C.0", "6E.c.0"))
    assert not any(symbol.match(s) for s in ("XX.c.0", "ES.c.10", "ES", "ES.c."))
    subscribe = re.compile(params_["subscribe_symbol"]["schema"]["pattern"])
    assert all(subscribe.match(s) for s in ("ESZ6", "ES", "mnq", "QQZ6"))
    assert not any(subscribe.match(s) for s in ("ES.c.0", "XYZ", "E"))
    assert "/api/rolls/{product}" in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert {"contract"} <= set(schemas["Book"]["properties"])
    assert {"contracts"} <= set(schemas["Bars"]["properties"])
    assert {"kind", "product"} <= set(schemas["Subscription"]["properties"])
    assert "expired" in schemas["Subscription"]["properties"]["status"]["enum"]
    assert schemas["ScheduledRoll"]["properties"]["status"]["enum"] == ["scheduled"]
    for path in ("/api/ticks/{symbol}", "/api/quotes/{symbol}", "/api/level2/{symbol}", "/api/bars/{symbol}",
                 "/api/book/{symbol}"):
        assert "continuous" in doc["paths"][path]["get"]["description"]


# -- the Lambda's calendar ------------------------------------------------------------------

def test_a_runtime_without_pandas_resolves_bundled_years_and_says_so_outside_them(tmp_path):
    """What the Lambda does: no pandas_market_calendars, no writable cache, the bundle package.sh writes."""
    bundle = tmp_path / "bundle"
    # An instant needs its year and the ones either side (a session can open in the year before its date).
    assert calendar.write_bundle(bundle, 2025, 2028) == 4 * len({p.calendar for p in PRODUCTS.values()})
    script = textwrap.dedent(f"""
        import datetime as dt, json, sys
        sys.modules["pandas"] = None                   # an import of either now fails, as in the Lambda
        sys.modules["pandas_market_calendars"] = None
        sys.path.insert(0, {str(API_DIR)!r})
        from chalicelib import continuous
        from chalicelib.errors import BadRequest
        from rdc_common.products import parse_continuous
        es = parse_continuous("ES.c.0")
        t = lambda *p: dt.datetime(*p, tzinfo=dt.UTC)
        out = {{"segments": [s.symbol for s in continuous.segments(es, t(2026, 12, 9, 22), t(2026, 12, 10))]}}
        try:
            continuous.segments(es, t(2031, 6, 1), t(2031, 6, 2))
        except BadRequest as exc:
            out["outside"] = [exc.title, str(exc)]
        print(json.dumps(out))
    """)
    env = {**os.environ, "RDC_CALENDAR_BUNDLE": str(bundle), "RDC_CALENDAR_CACHE": str(tmp_path / "no-cache")}
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["segments"] == ["ESZ6", "ESH7"]
    assert out["outside"][0] == "Calendar unavailable" and "2031" in out["outside"][1]


def test_the_lambda_package_carries_the_bundle():
    script = (API_DIR / "package.sh").read_text()
    assert "rdc_common.calendar bundle" in script
    assert "pandas" not in (API_DIR / "requirements.txt").read_text()
