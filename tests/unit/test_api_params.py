"""The API's parameter rules (pure): symbols, limits, times, ranges, cursors and bodies."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

from chalicelib import params  # noqa: E402
from chalicelib.errors import BadRequest  # noqa: E402

pytestmark = pytest.mark.unit

UTC = dt.UTC
WEEK = dt.timedelta(days=7)


@pytest.mark.parametrize("raw, expected", [("ESZ6", "ESZ6"), ("esz6", "ESZ6"), (" 6EH7 ", "6EH7"), ("MESM6", "MESM6")])
def test_symbols_are_upper_cased(raw, expected):
    assert params.parse_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["", "ES", "ESZ", "ESZ66", "ES-Z6", "ESA6", "ABCDZ6", "ES Z6", "<script>", "ESZ6;--"])
def test_malformed_symbols_say_what_a_symbol_looks_like(raw):
    with pytest.raises(BadRequest) as err:
        params.parse_symbol(raw)
    assert "for example ESZ6" in err.value.message


@pytest.mark.parametrize("raw, expected", [(None, 100), ("1", 1), ("250", 250), ("1000", 1000), ("1001", 1000),
                                           ("99999999999999999999", 1000), (" 7 ", 7)])
def test_limit_defaults_and_caps(raw, expected):
    assert params.parse_limit(raw, 100, 1000) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "ten", "", "1e3", "0x10", "+"])
def test_bad_limits_are_rejected_with_the_allowed_range(raw):
    with pytest.raises(BadRequest) as err:
        params.parse_limit(raw, 100, 1000)
    assert "from 1 to 1000" in err.value.message


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-24T14:30:00Z", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("2026-11-24T14:30:00+00:00", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("2026-11-24T09:30:00-05:00", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("2026-11-24T14:30:00.123456+00:00", dt.datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=UTC)),
    # '+' sent unencoded in a query string arrives as a space
    ("2026-11-24T14:30:00 00:00", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("1795530600", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("1795530600.25", dt.datetime(2026, 11, 24, 14, 30, 0, 250000, tzinfo=UTC)),
    ("1795530600000", dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
    ("1795530600123", dt.datetime(2026, 11, 24, 14, 30, 0, 123000, tzinfo=UTC)),
])
def test_times_in_every_accepted_form(raw, expected):
    assert params.parse_time(raw, "start") == expected


@pytest.mark.parametrize("raw", ["2026-11-24T14:30:00", "2026-11-24", "yesterday", "", "-5", "1e9",
                                 "2026-13-01T00:00:00Z", "9" * 17, "x" * 100])
def test_bad_times_say_which_forms_are_accepted(raw):
    with pytest.raises(BadRequest) as err:
        params.parse_time(raw, "start")
    assert "UTC offset" in err.value.message and "epoch" in err.value.message


def test_epoch_numbers_longer_than_milliseconds_are_out_of_range():
    for raw in ("1795530600000000", "1795530600000000000", "123456789012345.5"):
        with pytest.raises(BadRequest, match="out of range"):
            params.parse_time(raw, "start")
    assert params.parse_time("99999999999999", "start").year == 5138  # the longest number accepted


def test_times_at_the_ends_of_the_calendar_are_clamped_not_an_error():
    assert params.parse_time("0001-01-01T00:00:00+14:00", "at") == params.EARLIEST
    assert params.parse_time("9999-12-31T23:00:00-23:00", "at") == params.LATEST
    # a missing bound worked out past the end of time stops there
    assert params.resolve_window("9999-12-31T00:00:00Z", None, WEEK)[1] == params.LATEST
    assert params.resolve_window(None, "0001-01-02T00:00:00Z", WEEK)[0] == params.EARLIEST
    now = dt.datetime(2026, 11, 24, 12, tzinfo=UTC)
    start, end = params.bars_window("9999-12-31T23:59:59Z", None, "1m", dt.timedelta(minutes=1), WEEK,
                                    dt.timedelta(days=366), now)
    assert end == params.LATEST and start < end
    start, end = params.bars_window(None, "0001-01-01T00:30:00Z", "1m", dt.timedelta(minutes=1), WEEK,
                                    dt.timedelta(days=366), now)
    assert start == params.EARLIEST
    assert params.shift(params.LATEST, -WEEK) == params.LATEST - WEEK


def test_a_range_must_be_ordered_and_bounded():
    with pytest.raises(BadRequest, match="must be before end"):
        params.resolve_window("2026-11-24T00:00:00Z", "2026-11-24T00:00:00Z", WEEK)
    with pytest.raises(BadRequest, match="must be before end"):
        params.resolve_window("2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z", WEEK)
    with pytest.raises(BadRequest, match="more than 7 days"):
        params.resolve_window("2026-11-01T00:00:00Z", "2026-11-08T00:00:01Z", WEEK)
    start, end = params.resolve_window("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z", WEEK)
    assert end - start == WEEK


def test_a_missing_bound_makes_the_longest_range():
    start = dt.datetime(2026, 11, 1, tzinfo=UTC)
    assert params.resolve_window("2026-11-01T00:00:00Z", None, WEEK) == (start, start + WEEK)
    assert params.resolve_window(None, "2026-11-01T00:00:00Z", WEEK) == (start - WEEK, start)
    assert params.resolve_window(None, None, WEEK) == (None, None)


def test_intervals_are_case_insensitive_and_default_to_one_minute():
    assert params.parse_interval("1S ") == ("1s", dt.timedelta(seconds=1))
    assert params.parse_interval(None) == ("1m", dt.timedelta(minutes=1))


@pytest.mark.parametrize("raw", ["2m", "1w", "60", ""])
def test_unknown_intervals_list_the_known_ones(raw):
    with pytest.raises(BadRequest) as err:
        params.parse_interval(raw)
    assert "1s, 1m, 5m, 15m, 1h, 1d" in err.value.message


def test_bars_windows_are_bounded_per_interval():
    now = dt.datetime(2026, 11, 24, 12, tzinfo=UTC)
    start, end = params.bars_window(None, None, "1m", dt.timedelta(minutes=1), WEEK, dt.timedelta(days=366), now)
    assert end == now and end - start == dt.timedelta(minutes=1000)
    # 1d bars may span a year, raw-row intervals only a week
    start, end = params.bars_window("2025-11-24T00:00:00Z", "2026-11-24T00:00:00Z", "1d", dt.timedelta(days=1),
                                    WEEK, dt.timedelta(days=366), now)
    assert end - start == dt.timedelta(days=365)
    with pytest.raises(BadRequest, match="366 days, the longest range served for 1d bars"):
        params.bars_window("2025-01-01T00:00:00Z", "2026-11-24T00:00:00Z", "1d", dt.timedelta(days=1), WEEK,
                           dt.timedelta(days=366), now)
    with pytest.raises(BadRequest, match="7 days, the longest range served for 1h bars"):
        params.bars_window("2026-11-01T00:00:00Z", "2026-11-20T00:00:00Z", "1h", dt.timedelta(hours=1), WEEK,
                           dt.timedelta(days=366), now)
    # 1s bars are bounded by the bucket count too
    with pytest.raises(BadRequest, match="1s bars"):
        params.bars_window("2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", "1s", dt.timedelta(seconds=1), WEEK,
                           dt.timedelta(days=366), now)


def _cursor(**changes) -> params.Cursor:
    base = dict(kind="ticks", symbol="ESZ6", order="desc", ts=dt.datetime(2026, 11, 24, 14, 30, 0, 1, tzinfo=UTC),
                id=42, start=None, end=None)
    return params.Cursor(**{**base, **changes})


def test_cursors_round_trip_exactly():
    for c in (_cursor(), _cursor(order="asc", start=dt.datetime(2026, 11, 24, tzinfo=UTC),
                                 end=dt.datetime(2026, 11, 25, tzinfo=UTC), id=2**62),
              _cursor(start=params.LATEST - WEEK, end=params.LATEST)):  # a window clamped at the end of time
        token = params.encode_cursor(c)
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert params.decode_cursor(token) == c


@pytest.mark.parametrize("token", [
    "", "not-base64!", "e30", "W10", "x" * 600,
    params.encode_cursor(_cursor()).upper(),
])
def test_tampered_cursors_are_rejected(token):
    with pytest.raises(BadRequest, match="next_cursor"):
        params.decode_cursor(token)


@pytest.mark.parametrize("payload", [
    [2, "ticks", "ESZ6", "desc", 0, 1, None, None],          # unknown version
    [1, "ticks", "ESZ6", "sideways", 0, 1, None, None],      # bad order
    [1, "ticks", "ESZ6", "desc", "0", 1, None, None],        # timestamp as text
    [1, "ticks", "ESZ6", "desc", 0, True, None, None],       # bool id
    [1, "ticks", "ESZ6", "desc", 10**20, 1, None, None],     # beyond year 9999
    [1, "ticks", "ESZ6", "desc", 0, 1, None],                # short
])
def test_structurally_wrong_cursors_are_rejected(payload):
    import base64

    token = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    with pytest.raises(BadRequest):
        params.decode_cursor(token)


def test_a_cursor_continues_only_its_own_query():
    token = params.encode_cursor(_cursor())
    common = dict(default_limit=100, max_limit=1000, max_range=WEEK)
    req = params.page_request({"cursor": token, "limit": "5"}, kind="ticks", symbol="ESZ6", **common)
    assert req.after == (_cursor().ts, 42) and req.order == "desc" and req.limit == 5
    for kind, symbol in (("level2", "ESZ6"), ("ticks", "NQZ6")):
        with pytest.raises(BadRequest, match="cursor continues"):
            params.page_request({"cursor": token}, kind=kind, symbol=symbol, **common)
    with pytest.raises(BadRequest, match="order differs"):
        params.page_request({"cursor": token, "order": "asc"}, kind="ticks", symbol="ESZ6", **common)
    with pytest.raises(BadRequest, match="start/end differ"):
        params.page_request({"cursor": token, "start": "2026-11-24T00:00:00Z"}, kind="ticks", symbol="ESZ6",
                            **common)


@pytest.mark.parametrize("body, expected", [
    (None, None), (b"", None), (b"  ", None), (b"null", None), (b"{}", None),
    (b'{"exchange": "COMEX"}', "COMEX"), (b'{"exchange": "comex"}', "COMEX"), (b'{"exchange": null}', None),
])
def test_subscription_bodies(body, expected):
    assert params.parse_subscription_body(body) == expected


@pytest.mark.parametrize("body, fragment", [
    (b"{", "not valid JSON"), (b"[1]", "JSON object"), (b'"CME"', "JSON object"),
    (b'{"exchange": 5}', "must be a string"), (b'{"exchange": ["CME"]}', "must be a string"),
    (b'{"exchange": "NASDAQ"}', "unknown exchange"), (b'{"exchnage": "CME"}', "only field"),
    (b"\xff\xfe", "UTF-8"),
])
def test_bad_subscription_bodies(body, fragment):
    with pytest.raises(BadRequest) as err:
        params.parse_subscription_body(body)
    assert fragment in err.value.message


def test_subscription_exchange_comes_from_the_catalogue_or_must_be_given():
    assert params.subscription_exchange("GCZ6", None) == "COMEX"
    assert params.subscription_exchange("ESZ6", "CME") == "CME"
    assert params.subscription_exchange("QQZ6", "CME") == "CME"  # unknown product, exchange given
    with pytest.raises(BadRequest, match="pass it explicitly") as err:
        params.subscription_exchange("QQZ6", None)
    assert err.value.title == "Exchange required"
    with pytest.raises(BadRequest, match="trades on CME, not NYMEX"):
        params.subscription_exchange("ESZ6", "NYMEX")
    with pytest.raises(BadRequest, match="lists only the months"):
        params.subscription_exchange("GCH6", None)
