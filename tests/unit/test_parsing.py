"""The collector's decoder turns wire frames into the rows a user will read back."""

import datetime as dt

import pytest
from async_rithmic import protocol_buffers as pb

from collector_ecs.parsing import (
    FrameError,
    QuoteBook,
    decode_book,
    decode_market_data_response,
    decode_trade,
    exchange_time,
    split_frame,
    trades_from_history,
)

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)


def frame(msg) -> bytes:
    body = msg.SerializeToString()
    return len(body).to_bytes(4, "big") + body


def test_trade_row_carries_exchange_time_not_local_clock():
    m = pb.last_trade_pb2.LastTrade(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=1 | 8,
                                    trade_price=6012.25, trade_size=3, aggressor=2, volume=1234,
                                    ssboe=1_795_000_000, usecs=123_456)
    f = frame(m)
    assert split_frame(f) == (150, f[4:])
    row = decode_trade(f[4:], NOW)
    assert row[0] == dt.datetime(2026, 11, 18, 11, 6, 40, 123_456, tzinfo=dt.UTC)
    assert row[0] == exchange_time(1_795_000_000, 123_456)
    assert row[1:7] == ("ESZ6", "CME", 6012.25, 3, "SELL", 1234)
    assert row[7] == NOW and row[8] is False


def _trade(**times):
    return pb.last_trade_pb2.LastTrade(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=1 | 8,
                                       trade_price=6012.25, trade_size=3, aggressor=1, volume=99, **times)


def test_trade_timestamp_is_the_exchange_source_time_to_the_nanosecond_and_the_gateway_time_is_kept_beside():
    m = _trade(source_ssboe=1_795_000_000, source_usecs=999_812, source_nsecs=999_812_417,
               ssboe=1_795_000_001, usecs=233)  # the gateway stamped it 421 us later, in the next second
    row = decode_trade(m.SerializeToString(), NOW)
    assert row[0] == exchange_time(1_795_000_000, 999_812)
    assert row[9] == 1_795_000_000_999_812_417  # epoch nanoseconds, exact
    assert row[10] == exchange_time(1_795_000_001, 233)
    assert row[1:9] == ("ESZ6", "CME", 6012.25, 3, "BUY", 99, NOW, False)


def test_without_a_source_time_the_gateway_time_is_the_best_there_is():
    row = decode_trade(_trade(ssboe=1_795_000_000, usecs=5).SerializeToString(), NOW)
    assert row[0] == row[10] == exchange_time(1_795_000_000, 5) and row[9] is None


def test_a_source_time_without_nanoseconds_keeps_its_microseconds_and_claims_no_more():
    row = decode_trade(_trade(source_ssboe=1_795_000_000, source_usecs=7, ssboe=1_795_000_000, usecs=300)
                       .SerializeToString(), NOW)
    assert row[0] == exchange_time(1_795_000_000, 7) and row[9] is None
    assert row[10] == exchange_time(1_795_000_000, 300)


def test_a_source_time_without_a_gateway_stamp_has_no_gateway_at():
    row = decode_trade(_trade(source_ssboe=1_795_000_000, source_usecs=7, source_nsecs=7_001).SerializeToString(), NOW)
    assert row[0] == exchange_time(1_795_000_000, 7) and row[9] == 1_795_000_000_000_007_001 and row[10] is None


def test_snapshot_and_volume_only_last_trade_are_not_trades():
    snap = pb.last_trade_pb2.LastTrade(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=1,
                                       is_snapshot=True, trade_price=1, trade_size=1, ssboe=1)
    vol = pb.last_trade_pb2.LastTrade(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=8, volume=5)
    assert decode_trade(snap.SerializeToString(), NOW) is None
    assert decode_trade(vol.SerializeToString(), NOW) is None


def test_missing_aggressor_is_null():
    m = pb.last_trade_pb2.LastTrade(template_id=150, symbol="CLF7", exchange="NYMEX", presence_bits=1,
                                    trade_price=70.01, trade_size=1, ssboe=1, usecs=0)
    assert decode_trade(m.SerializeToString(), NOW)[5] is None


def test_quote_rows_carry_the_unchanged_side_forward_and_clear_bits_empty_it():
    qb = QuoteBook()
    both = pb.best_bid_offer_pb2.BestBidOffer(template_id=151, symbol="ESZ6", exchange="CME", presence_bits=3,
                                              bid_price=6012.0, bid_size=41, bid_orders=12, ask_price=6012.25,
                                              ask_size=37, ask_orders=9, ssboe=10, usecs=1)
    ask_only = pb.best_bid_offer_pb2.BestBidOffer(template_id=151, symbol="ESZ6", exchange="CME", presence_bits=2,
                                                  ask_price=6012.5, ask_size=5, ask_orders=2, ssboe=10, usecs=2)
    clear_bid = pb.best_bid_offer_pb2.BestBidOffer(template_id=151, symbol="ESZ6", exchange="CME", clear_bits=1,
                                                   ssboe=10, usecs=3)
    assert qb.decode(both.SerializeToString(), NOW)[3:9] == (6012.0, 41, 12, 6012.25, 37, 9)
    assert qb.decode(ask_only.SerializeToString(), NOW)[3:9] == (6012.0, 41, 12, 6012.5, 5, 2)
    assert qb.decode(clear_bid.SerializeToString(), NOW)[3:9] == (None, None, None, 6012.5, 5, 2)


def test_book_row_keeps_levels_and_update_type_name():
    m = pb.order_book_pb2.OrderBook(template_id=156, symbol="ESZ6", exchange="CME", update_type=7,
                                    bid_price=[6012.0], bid_size=[0], bid_orders=[0],
                                    ask_price=[6012.25, 6012.5], ask_size=[3, 4], ask_orders=[1, 2], ssboe=5, usecs=6)
    row = decode_book(m.SerializeToString(), NOW)
    assert row[3] == "SOLO"
    assert row[4:10] == ((6012.0,), (0,), (0,), (6012.25, 6012.5), (3, 4), (1, 2))
    bid_only = pb.order_book_pb2.OrderBook(template_id=156, symbol="ESZ6", exchange="CME", update_type=7,
                                           bid_price=[6011.75], bid_size=[2], ssboe=5, usecs=7)
    assert decode_book(bid_only.SerializeToString(), NOW)[4:10] == ((6011.75,), (2,), (), (), (), ())


@pytest.mark.parametrize("bad", [b"", b"\x00\x00\x00\x05abc", b"\x00\x00\x00\x03\xff\xff\xff"])
def test_malformed_frames_raise_frame_error(bad):
    with pytest.raises(FrameError):
        split_frame(bad)


def test_subscription_answer_exposes_user_msg_and_code():
    m = pb.response_market_data_update_pb2.ResponseMarketDataUpdate(template_id=101, user_msg=["rdc-sub-1"],
                                                                     rp_code=["5", "symbol not found"])
    assert decode_market_data_response(m.SerializeToString()) == (["rdc-sub-1"], ["5", "symbol not found"])


def test_history_ticks_become_backfilled_trades_with_side():
    ticks = [{"data_bar_ssboe": [100], "data_bar_usecs": [7], "close_price": 6000.25, "volume": "2",
              "ask_volume": "2"},
             {"data_bar_ssboe": [101], "data_bar_usecs": [0], "close_price": 6000.0, "volume": "1",
              "bid_volume": "1"}]
    rows = trades_from_history(ticks, "ESZ6", "CME", NOW)
    assert [(r[3], r[4], r[5], r[8]) for r in rows] == [(6000.25, 2, "BUY", True), (6000.0, 1, "SELL", True)]
    assert rows[0][0] == exchange_time(100, 7)
    # the replay carries no nanoseconds, gateway stamp or cumulative volume: none is invented
    assert all(r[6] is None and r[9] is None and r[10] is None for r in rows)
