"""Which of the history plant's trades a gap's backfill takes: every trade the live stream missed,
none it stored, also when trades share a boundary's microsecond (real exchanges print several
trades in one microsecond; the simulator never does)."""

import datetime as dt

import pytest

from collector_ecs.gaps import OpenGap, missed_trades
from collector_ecs.parsing import exchange_time

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)
S = 1_795_000_000


def row(usecs: int, price: float, size: int, backfilled=True):
    return (exchange_time(S, usecs), "ESZ6", "CME", price, size, "BUY", None, NOW, backfilled, None, None)


def gap(start, held, end, first_after):
    return OpenGap("ESZ6", "CME", exchange_time(S, start), "disconnect", end=exchange_time(S, end),
                   held_at_start=held, first_after=first_after)


def test_distinct_timestamps_take_exactly_the_trades_strictly_between_the_boundaries():
    history = [row(10, 1.0, 1), row(20, 2.0, 1), row(30, 3.0, 1), row(40, 4.0, 1)]
    assert missed_trades(history, gap(10, 1, 40, row(40, 4.0, 1, False))) == history[1:3]


def test_trades_sharing_the_start_microsecond_after_the_stored_ones_are_backfilled():
    # three trades in microsecond 10; two arrived before the outage, the third was missed
    history = [row(10, 1.0, 1), row(10, 1.0, 1), row(10, 1.25, 2), row(20, 2.0, 1), row(30, 3.0, 1)]
    got = missed_trades(history, gap(10, 2, 30, row(30, 3.0, 1, False)))
    assert got == [history[2], history[3]]


def test_trades_sharing_the_end_microsecond_before_the_first_live_one_are_backfilled():
    history = [row(10, 1.0, 1), row(20, 2.0, 1), row(30, 3.0, 1), row(30, 3.25, 4), row(30, 3.0, 1)]
    # the first trade received after the outage is the second one of microsecond 30
    got = missed_trades(history, gap(10, 1, 30, row(30, 3.25, 4, False)))
    assert got == [history[1], history[2]]


def test_when_the_first_live_trade_is_not_in_the_replay_nothing_of_its_microsecond_is_taken():
    history = [row(10, 1.0, 1), row(20, 2.0, 1), row(30, 3.0, 1)]
    assert missed_trades(history, gap(10, 1, 30, row(30, 9.0, 9, False))) == [history[1]]


def test_a_gap_inside_one_microsecond():
    history = [row(10, 1.0, 1), row(10, 1.5, 1), row(10, 1.75, 1), row(10, 2.0, 1)]
    # stored: the first; missed: the next two; the fourth is the first trade after the outage
    assert missed_trades(history, gap(10, 1, 10, row(10, 2.0, 1, False))) == history[1:3]


def test_identical_prints_are_never_duplicated():
    # A, A at microsecond 30, the live stream resumed with the first A: nothing before it was missed
    history = [row(20, 2.0, 1), row(30, 3.0, 1), row(30, 3.0, 1)]
    assert missed_trades(history, gap(20, 1, 30, row(30, 3.0, 1, False))) == []


def test_a_gap_starts_at_the_last_trade_received_counting_those_that_share_its_microsecond():
    from async_rithmic import protocol_buffers as pb

    from collector_ecs.ingest import Ingest

    class Rows:
        full = False

        def appender(self, table):
            return [].append

    def frame(usecs, nsecs_part, price):
        m = pb.last_trade_pb2.LastTrade(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=1,
                                        trade_price=price, trade_size=1, aggressor=1, source_ssboe=S,
                                        source_usecs=usecs, source_nsecs=usecs * 1000 + nsecs_part,
                                        ssboe=S, usecs=usecs + 300)
        body = m.SerializeToString()
        return len(body).to_bytes(4, "big") + body

    ingest = Ingest(Rows())
    assert ingest.last_trade("ESZ6") is None
    for usecs, ns, price in ((5, 0, 1.0), (9, 100, 1.25), (9, 700, 1.5)):
        assert ingest.handle(frame(usecs, ns, price), NOW)
    # two trades in microsecond 9, told apart by their nanoseconds but stored in the same timestamp
    assert ingest.last_trade("ESZ6") == (exchange_time(S, 9), 2)
