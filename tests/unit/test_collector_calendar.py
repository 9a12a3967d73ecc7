"""The collector's calendar decisions at pinned instants (rdc_common.clock.ManualClock): when silence is
expected, when an outage can have lost nothing, how slowly to reconnect while closed, what the
heartbeat reports per symbol, and when a followed product rolls and a contract expires.

The instants are the ones the issue names: just before the December 2026 roll, the early close of
2026-12-24, the DST change of 2027-03-14 and the one-digit year wrapping to 2030 in December 2029.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from collector_ecs import markets, rolls
from collector_ecs.subscriptions import SubscriptionManager
from rdc_common.calendar import contract_at, front_contract
from rdc_common.clock import ManualClock, ScaledClock
from rdc_common.products import PRODUCTS

pytestmark = pytest.mark.unit

CT = ZoneInfo("America/Chicago")
UTC = dt.UTC
ES, CL = PRODUCTS["ES"], PRODUCTS["CL"]


def ct(*args) -> float:
    return dt.datetime(*args, tzinfo=CT).timestamp()


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, UTC).isoformat()


def plan(rolls_list):
    return [(r.from_symbol, r.to_symbol, iso(r.at)) for r in rolls_list]


# -- closed is not broken ---------------------------------------------------------------------------

def test_silence_counts_only_while_open_and_from_the_latest_open():
    thursday_open = markets.watch_state(["ESZ6", "CLF7"], ct(2026, 12, 3, 15, 59))
    assert thursday_open.open_symbols == 2 and not thursday_open.all_closed
    assert iso(thursday_open.opened_at) == "2026-12-02T23:00:00+00:00"  # Wednesday 17:00 CT
    halt = markets.watch_state(["ESZ6", "CLF7"], ct(2026, 12, 3, 16, 30))
    assert halt.all_closed and iso(halt.next_open) == "2026-12-03T23:00:00+00:00"
    weekend = markets.watch_state(["ESZ6"], ct(2026, 12, 5, 12, 0))
    assert weekend.all_closed and iso(weekend.next_open) == "2026-12-06T23:00:00+00:00"
    just_opened = markets.watch_state(["ESZ6"], ct(2026, 12, 6, 17, 0, 1))
    assert iso(just_opened.opened_at) == "2026-12-06T23:00:00+00:00"
    # A product the catalogue lacks has no calendar here: it always counts as open.
    assert markets.watch_state(["XXZ6"], ct(2026, 12, 5, 12, 0)).open_symbols == 1


def test_an_outage_inside_a_close_lost_nothing_and_one_touching_open_time_did():
    assert markets.lost_nothing("ESZ6", ct(2026, 12, 4, 16, 0, 1), ct(2026, 12, 6, 16, 59))  # the weekend
    assert markets.lost_nothing("ESZ6", ct(2026, 12, 3, 16, 0), ct(2026, 12, 3, 17, 0))  # the daily halt
    assert not markets.lost_nothing("ESZ6", ct(2026, 12, 4, 15, 59, 59), ct(2026, 12, 5, 12, 0))
    assert not markets.lost_nothing("ESZ6", ct(2026, 12, 6, 16, 59), ct(2026, 12, 6, 17, 0, 1))
    assert markets.open_seconds("ESZ6", ct(2026, 12, 4, 15, 0), ct(2026, 12, 6, 18, 0)) == 2 * 3600
    assert not markets.lost_nothing("XXZ6", ct(2026, 12, 5, 1, 0), ct(2026, 12, 5, 2, 0))  # unknown: a gap


def test_early_close_on_christmas_eve_2026():
    assert markets.market_json("ESZ6", ct(2026, 12, 24, 11, 59))["market"] == "open"
    closed = markets.market_json("ESZ6", ct(2026, 12, 24, 12, 30))
    assert closed == {"market": "closed", "trade_date": None, "next_open": "2026-12-27T23:00:00+00:00",
                      "next_close": None}
    # Stopped after the early close and started before Sunday's open: nothing was missed.
    assert markets.lost_nothing("ESH7", ct(2026, 12, 24, 12, 0), ct(2026, 12, 27, 16, 59))
    assert not markets.lost_nothing("ESH7", ct(2026, 12, 24, 11, 59), ct(2026, 12, 27, 16, 59))


def test_dst_change_2027_03_14_sunday_open_is_22_utc():
    assert markets.market_json("ESH7", utc(2027, 3, 14, 21, 59, 59))["next_open"] == "2027-03-14T22:00:00+00:00"
    assert markets.market_json("ESH7", utc(2027, 3, 14, 22, 0))["market"] == "open"
    # A week earlier (standard time) Sunday's open was 23:00 UTC.
    assert markets.market_json("ESH7", utc(2027, 3, 7, 22, 30))["market"] == "closed"
    # Friday still closed at 16:00 CST (22:00 UTC); Sunday opened at 17:00 CDT (22:00 UTC).
    assert markets.lost_nothing("ESH7", utc(2027, 3, 12, 22, 0), utc(2027, 3, 14, 21, 59))
    assert not markets.lost_nothing("ESH7", utc(2027, 3, 12, 21, 59), utc(2027, 3, 14, 21, 59))


def test_grains_break_is_halted_and_unknown_products_have_no_market():
    assert markets.market_json("ZCH7", ct(2026, 12, 10, 8, 0))["market"] == "halted"
    assert markets.market_json("XXZ6", ct(2026, 12, 10, 8, 0))["market"] is None


def test_reconnects_while_every_market_is_closed_wait_five_clock_minutes_but_not_past_the_open():
    real_time = ManualClock(ct(2026, 12, 5, 12, 0))
    t = real_time.now()
    weekend = markets.watch_state(["ESZ6"], t)
    assert markets.closed_reconnect_floor(weekend, real_time, t) == 300.0
    # Four minutes before Sunday's open: the next attempt lands a minute before it.
    t2 = ct(2026, 12, 6, 16, 56)
    assert markets.closed_reconnect_floor(markets.watch_state(["ESZ6"], t2), real_time, t2) == 180.0
    t3 = ct(2026, 12, 6, 16, 59, 30)
    assert markets.closed_reconnect_floor(markets.watch_state(["ESZ6"], t3), real_time, t3) == 1.0
    # A fast simulated clock: 300 clock seconds are 0.5 real seconds at 600x; never below a second.
    fast = ScaledClock(t, speed=600.0, anchor=0.0)
    assert markets.closed_reconnect_floor(weekend, fast, t) == 1.0
    assert markets.closed_reconnect_floor(weekend, ScaledClock(t, speed=60.0, anchor=0.0), t) == 5.0
    open_now = markets.watch_state(["ESZ6"], ct(2026, 12, 7, 9, 0))
    assert markets.closed_reconnect_floor(open_now, real_time, ct(2026, 12, 7, 9, 0)) == 0.0


# -- rolls and expiries -----------------------------------------------------------------------------

def test_just_before_the_december_2026_roll():
    t = ct(2026, 12, 9, 16, 55)  # 22:55 UTC: the roll is at 17:00 CT
    assert front_contract(ES, t).symbol == "ESZ6"
    assert plan(rolls.due(ES, t, 60.0, first=True)) == [(None, "ESZ6", "2026-12-09T22:55:00+00:00")]
    assert plan(rolls.due(ES, t, 60.0, first=False)) == [("ESU6", "ESZ6", "2026-09-09T22:00:00+00:00")]
    assert iso(rolls.next_roll_check(ES, t, 60.0)) == "2026-12-09T22:59:00+00:00"
    # Within the lead, in the halt: ESH7 is subscribed now, recorded as front from 17:00 CT.
    t2 = ct(2026, 12, 9, 16, 59, 30)
    assert plan(rolls.due(ES, t2, 60.0, first=False)) == [
        ("ESU6", "ESZ6", "2026-09-09T22:00:00+00:00"), ("ESZ6", "ESH7", "2026-12-09T23:00:00+00:00")]
    # The "22:55 CT" is after the roll: a collector started then writes the same roll row.
    t3 = ct(2026, 12, 9, 22, 55)
    assert plan(rolls.due(ES, t3, 60.0, first=False)) == [("ESZ6", "ESH7", "2026-12-09T23:00:00+00:00")]
    assert iso(rolls.next_roll_check(ES, t3, 60.0)) == "2027-03-10T22:59:00+00:00"
    # ESZ6 is kept until it stops trading, at the close of its last trading day.
    assert iso(rolls.contract_expiry("ESZ6", t3)) == "2026-12-18T22:00:00+00:00"
    assert rolls.expired_reason("ESZ6", rolls.contract_expiry("ESZ6", t3)) == \
        "ESZ6 stopped trading at 2026-12-18T22:00:00+00:00"


def test_a_fast_clock_subscribes_the_new_front_month_at_the_close_before_the_roll_not_earlier():
    roll = utc(2026, 12, 9, 23, 0)
    assert iso(rolls.lead_start(ES, roll, 60.0)) == "2026-12-09T22:59:00+00:00"
    assert iso(rolls.lead_start(ES, roll, 5 * 2400.0)) == "2026-12-09T22:00:00+00:00"  # 16:00 CT


def test_december_2029_front_month_is_esh0_of_2030():
    t = ct(2029, 12, 20, 9, 0)
    assert plan(rolls.due(ES, t, 60.0, first=False)) == [("ESZ9", "ESH0", "2029-12-12T23:00:00+00:00")]
    assert contract_at("ESH0", t).year == 2030
    assert iso(rolls.contract_expiry("ESH0", t)) == "2030-03-15T21:00:00+00:00"
    assert iso(rolls.contract_expiry("ESZ9", t)) == "2029-12-21T22:00:00+00:00"  # not yet expired


def test_dst_change_moves_the_roll_instant_with_chicago_time():
    t = utc(2027, 3, 14, 21, 0)
    assert plan(rolls.due(ES, t, 60.0, first=False)) == [("ESH7", "ESM7", "2027-03-10T23:00:00+00:00")]
    assert iso(rolls.next_roll_check(ES, t, 60.0)) == "2027-06-09T21:59:00+00:00"  # 17:00 CDT - 1 min


def test_monthly_products_roll_every_month():
    t = ct(2026, 11, 24, 9, 0)
    assert plan(rolls.due(CL, t, 60.0, first=True)) == [(None, "CLF7", "2026-11-24T15:00:00+00:00")]
    later = rolls.next_roll_check(CL, t, 60.0) + 1
    assert [r.to_symbol for r in rolls.due(CL, later, 60.0, first=False)] == ["CLF7", "CLG7"]


def test_an_unknown_product_has_no_expiry_here():
    assert rolls.contract_expiry("XXZ6", ct(2026, 12, 9, 9, 0)) is None


def test_the_scheduler_wakes_at_the_next_roll_or_expiry():
    clock = ManualClock(ct(2026, 12, 9, 16, 50))
    subs = SubscriptionManager(session=None, control=None, redis_url="redis://unused", consumer="c", clock=clock)
    assert subs.next_instant(clock.now()) is None  # nothing followed, nothing subscribed
    subs.followed["ES"] = "CME"
    assert iso(subs.next_instant(clock.now())) == "2026-12-09T22:59:00+00:00"
    clock.set(ct(2026, 12, 9, 17, 5))  # rolled; ESZ6 now waits for its expiry
    subs._expiries["ESZ6"] = rolls.contract_expiry("ESZ6", clock.now())
    assert iso(subs.next_instant(clock.now())) == "2026-12-18T22:00:00+00:00"
    assert subs.roll_lead_s == 60.0
    fast = SubscriptionManager(session=None, control=None, redis_url="redis://unused", consumer="c",
                               clock=ScaledClock(clock.now(), speed=60.0, anchor=0.0))
    assert fast.roll_lead_s == 300.0  # five real seconds of a 60x clock
