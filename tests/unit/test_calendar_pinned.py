"""The date-sensitive pure code (rdc_common.calendar, rdc_common.products) at pinned instants: a roll,
an early close, a DST change, the one-digit year's decade wrap and a year end. Every instant is an
input, so these hold whatever the real date is; the expected values are CME's published facts, written
as literals (UTC), not recomputed with the code under test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from rdc_common import calendar
from rdc_common.products import PRODUCTS, contract, front_month, listed_contracts, resolve_year

pytestmark = pytest.mark.unit

UTC = dt.UTC
ES = PRODUCTS["ES"]


def at(*parts) -> float:
    return dt.datetime(*parts, tzinfo=UTC).timestamp()


def utc(t: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(t, UTC) if t is not None else None


# -- the ES roll of 2026-12-09 17:00 CT (23:00 UTC) ------------------------------------

def test_es_rolls_at_the_open_of_the_december_10_session():
    assert utc(calendar.roll_instant("ES", dt.date(2026, 12, 10))) == dt.datetime(2026, 12, 9, 23, tzinfo=UTC)
    esz6 = contract("ESZ6", dt.date(2026, 12, 9))
    assert (esz6.expiry, esz6.roll_date) == (dt.date(2026, 12, 18), dt.date(2026, 12, 10))


@pytest.mark.parametrize("instant, front, status", [
    (at(2026, 12, 9, 22, 55), "ESZ6", "closed"),          # 16:55 CT: the daily halt just before the roll
    (at(2026, 12, 9, 22, 59, 59, 999999), "ESZ6", "closed"),
    (at(2026, 12, 9, 23, 0), "ESH7", "open"),             # 17:00 CT: the session of 2026-12-10 opens on ESH7
    (at(2026, 12, 10, 4, 55), "ESH7", "open"),            # 22:55 CT the same evening
])
def test_the_front_month_changes_at_the_roll_instant(instant, front, status):
    assert calendar.front_contract("ES", instant).symbol == front
    assert calendar.hours("ES").state(instant).status == status


def test_the_halt_before_the_roll_ends_at_the_roll():
    state = calendar.hours("ES").state(at(2026, 12, 9, 22, 55))
    assert (state.trade_date, utc(state.next_open)) == (None, dt.datetime(2026, 12, 9, 23, tzinfo=UTC))
    assert state.as_json() == {"market": "closed", "trade_date": None,
                               "next_open": "2026-12-09T23:00:00+00:00", "next_close": None}
    after = calendar.hours("ES").state(at(2026, 12, 9, 23, 0))
    assert (after.trade_date, utc(after.next_close)) == (dt.date(2026, 12, 10),
                                                         dt.datetime(2026, 12, 10, 22, tzinfo=UTC))


def test_the_old_front_month_trades_until_its_expiry_then_is_expired():
    esz6 = calendar.contract_at("ESZ6", at(2026, 12, 9, 23, 0))
    assert utc(calendar.expiry_instant("ES", esz6.expiry)) == dt.datetime(2026, 12, 18, 22, tzinfo=UTC)  # 16:00 CT
    assert not calendar.is_expired(esz6, at(2026, 12, 18, 21, 59, 59))
    assert calendar.is_expired(esz6, at(2026, 12, 18, 22, 0))


def test_the_date_based_front_month_agrees_on_each_side_of_the_roll_date():
    assert front_month(ES, dt.date(2026, 12, 9)).symbol == "ESZ6"
    assert front_month(ES, dt.date(2026, 12, 10)).symbol == "ESH7"


# -- the early close of 2026-12-24 (12:00 CT) and Christmas ----------------------------

def test_christmas_eve_closes_at_noon_chicago_and_reopens_sunday_evening():
    hours = calendar.hours("ES")
    before = hours.state(at(2026, 12, 24, 17, 59))
    assert (before.status, before.trade_date) == ("open", dt.date(2026, 12, 24))
    assert utc(before.next_close) == dt.datetime(2026, 12, 24, 18, tzinfo=UTC)  # 12:00 CT
    closed = hours.state(at(2026, 12, 24, 18, 0))
    assert closed.status == "closed"
    # Friday the 25th is a holiday: the next session (trade date Monday the 28th) opens Sunday 17:00 CT.
    assert utc(closed.next_open) == dt.datetime(2026, 12, 27, 23, tzinfo=UTC)
    assert utc(hours.session_close(dt.date(2026, 12, 24))) == dt.datetime(2026, 12, 24, 18, tzinfo=UTC)
    assert hours.session_open(dt.date(2026, 12, 25)) is None
    assert not hours.is_open(at(2026, 12, 25, 15, 0))


# -- the DST change of 2027-03-14 --------------------------------------------------------

def test_the_sunday_open_moves_an_hour_earlier_in_utc_when_chicago_changes_to_daylight_time():
    hours = calendar.hours("ES")
    assert utc(hours.session_open(dt.date(2027, 3, 8))) == dt.datetime(2027, 3, 7, 23, tzinfo=UTC)   # 17:00 CST
    assert utc(hours.session_open(dt.date(2027, 3, 15))) == dt.datetime(2027, 3, 14, 22, tzinfo=UTC)  # 17:00 CDT
    assert utc(hours.session_close(dt.date(2027, 3, 12))) == dt.datetime(2027, 3, 12, 22, tzinfo=UTC)  # 16:00 CST
    assert utc(hours.session_close(dt.date(2027, 3, 15))) == dt.datetime(2027, 3, 15, 21, tzinfo=UTC)  # 16:00 CDT
    sunday = hours.state(at(2027, 3, 14, 21, 59))
    assert (sunday.status, utc(sunday.next_open)) == ("closed", dt.datetime(2027, 3, 14, 22, tzinfo=UTC))
    assert hours.is_open(at(2027, 3, 14, 22, 0))


@pytest.mark.parametrize("roll_date, instant", [
    (dt.date(2027, 3, 11), dt.datetime(2027, 3, 10, 23, tzinfo=UTC)),   # still standard time
    (dt.date(2027, 6, 10), dt.datetime(2027, 6, 9, 22, tzinfo=UTC)),    # daylight time
    (dt.date(2027, 9, 9), dt.datetime(2027, 9, 8, 22, tzinfo=UTC)),
    (dt.date(2027, 12, 9), dt.datetime(2027, 12, 8, 23, tzinfo=UTC)),   # standard time again
])
def test_roll_instants_are_17_00_chicago_in_either_time(roll_date, instant):
    assert utc(calendar.roll_instant("ES", roll_date)) == instant


# -- 2029-12-20: the one-digit year wraps to 2030 ----------------------------------------

def test_the_front_month_on_2029_12_20_is_esh0_of_2030():
    t = at(2029, 12, 20, 15, 0)
    front = calendar.front_contract("ES", t)
    assert (front.symbol, front.year, front.expiry) == ("ESH0", 2030, dt.date(2030, 3, 15))
    assert front_month(ES, dt.date(2029, 12, 20)).symbol == "ESH0"
    # ESZ9 still trades until its expiry on Friday the 21st, as December 2029, not 2019 nor 2039.
    esz9 = calendar.contract_at("ESZ9", t)
    assert (esz9.year, calendar.is_expired(esz9, t)) == (2029, False)
    assert utc(calendar.expiry_instant("ES", esz9.expiry)) == dt.datetime(2029, 12, 21, 22, tzinfo=UTC)
    assert not calendar.is_expired(esz9, at(2029, 12, 21, 21, 59))
    assert calendar.is_expired(esz9, at(2029, 12, 21, 22, 0))
    # A monthly product crosses the decade too: CLF0 (January 2030) stopped trading on 2029-12-20.
    assert calendar.front_contract("CL", t).symbol == "CLG0"
    assert calendar.contract_at("CLG0", t).year == 2030


@pytest.mark.parametrize("digit, today, year", [
    (0, dt.date(2029, 12, 20), 2030), (9, dt.date(2029, 12, 20), 2029), (9, dt.date(2030, 1, 2), 2029),
    (0, dt.date(2030, 6, 1), 2030), (8, dt.date(2029, 12, 20), 2028), (7, dt.date(2029, 12, 20), 2037),
    (8, dt.date(2030, 1, 2), 2038),
])
def test_one_digit_years_read_as_the_nearest_year_not_long_past(digit, today, year):
    assert resolve_year(digit, today) == year


def test_just_after_the_decade_turns_esz9_is_the_december_2029_contract_that_expired():
    esz9 = calendar.contract_at("ESZ9", at(2030, 1, 2, 15))
    assert esz9.year == 2029 and calendar.is_expired(esz9, at(2030, 1, 2, 15))


def test_listings_on_2029_12_20_run_into_the_next_decade():
    symbols = [c.symbol for c in listed_contracts(ES, dt.date(2029, 12, 20))]
    assert symbols[:4] == ["ESZ9", "ESH0", "ESM0", "ESU0"]
    assert [c.year for c in listed_contracts(ES, dt.date(2029, 12, 20))][:4] == [2029, 2030, 2030, 2030]


# -- the year end 2026 -> 2027 -----------------------------------------------------------

def test_sessions_across_the_year_end_and_new_years_day():
    hours = calendar.hours("ES")
    last = hours.state(at(2026, 12, 31, 21, 59))
    assert (last.status, last.trade_date, utc(last.next_close)) == \
        ("open", dt.date(2026, 12, 31), dt.datetime(2026, 12, 31, 22, tzinfo=UTC))
    for instant in (at(2026, 12, 31, 22, 0), at(2027, 1, 1, 12, 0)):
        state = hours.state(instant)
        assert (state.status, utc(state.next_open)) == ("closed", dt.datetime(2027, 1, 3, 23, tzinfo=UTC))
    assert hours.session_open(dt.date(2027, 1, 1)) is None
    assert utc(hours.session_open(dt.date(2027, 1, 4))) == dt.datetime(2027, 1, 3, 23, tzinfo=UTC)
    assert hours.state(at(2027, 1, 3, 23, 0)).trade_date == dt.date(2027, 1, 4)
    opened = [(utc(a), utc(b)) for a, b in hours.open_intervals(at(2026, 12, 31), at(2027, 1, 5))]
    assert opened == [
        (dt.datetime(2026, 12, 31, 0, tzinfo=UTC), dt.datetime(2026, 12, 31, 22, tzinfo=UTC)),
        (dt.datetime(2027, 1, 3, 23, tzinfo=UTC), dt.datetime(2027, 1, 4, 22, tzinfo=UTC)),
        (dt.datetime(2027, 1, 4, 23, tzinfo=UTC), dt.datetime(2027, 1, 5, 0, tzinfo=UTC)),
    ]
    assert calendar.front_contract("ES", at(2027, 1, 1, 12)).symbol == "ESH7"
