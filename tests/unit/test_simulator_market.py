"""The simulator's pure parts: the market model, the hand-written wire encoding, history pages,
market-by-order replay, the rate timeline, WebSocket framing and the control API's routing."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest
from async_rithmic import protocol_buffers as pb

from rdc_common.products import PRODUCTS, front_month
from simulator import history, wire
from simulator.config import from_args
from simulator.control import ControlApi, HttpError
from simulator.market import (
    ASK,
    BID,
    BUY,
    LEVELS,
    ROLL_OFFSET,
    Market,
    RateTimeline,
    book_at,
    resolve_contract,
    trade_stamps,
)
from simulator.mbo import PriceOrders
from simulator.reference import front_month_fields, search
from simulator.websocket import accept_key

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 11, 24)
NOW = dt.datetime(2026, 11, 24, 15, tzinfo=dt.UTC).timestamp()  # a Tuesday, 09:00 Chicago
SECOND = 1_795_600_000  # a fixed second, so every run checks the same market


def instrument(market: Market, code: str):
    return market.instrument(front_month(PRODUCTS[code], TODAY))


def payload(frame: bytes) -> bytes:
    """The protobuf inside one server frame: WebSocket header, then the 4-byte length prefix."""
    length = frame[1] & 0x7F
    start = 2 if length < 126 else 4
    body = frame[start + 4 :]
    assert int.from_bytes(frame[start : start + 4], "big") == len(body)
    return body


# --- the market ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ES", "ZN", "6E", "CL"])
@pytest.mark.parametrize("rate", [5, 200, 5000])
def test_every_event_keeps_the_book_sound(code, rate):
    market = Market(seed=4, rates=RateTimeline(rate))
    inst = instrument(market, code)
    anchor = market.anchor(inst, SECOND)
    bids, asks = anchor.levels(BID), anchor.levels(ASK)
    orders = {side: {px: len(market.orders_of_level(inst, side, px, q)) for px, q in levels.items()}
              for side, levels in ((BID, bids), (ASK, asks))}
    last = (SECOND - 1, ROLL_OFFSET)
    volume = market.volume_before(inst, SECOND)
    for second in range(SECOND, SECOND + 4):
        tape = market.tape(inst, second).complete()
        assert tape.volume_at_start == volume, "cumulative volume carries across seconds"
        for usecs, trade, bbo, groups in tape.events:
            assert (second, usecs) > last, "strictly increasing timestamps"
            last = (second, usecs)
            if trade is not None:
                px, size, aggressor, cumulative = trade
                assert size > 0 and cumulative == volume + size
                assert px == (min(asks) if aggressor == BUY else max(bids)), "trades at the touch"
                volume = cumulative
            for group in groups:
                for side, px, size, _reason, count in group:
                    levels = bids if side == BID else asks
                    if size:
                        levels[px] = size
                        orders[side][px] = count
                        assert 1 <= count <= size, "a level is at least one order of at least one contract"
                    else:
                        del levels[px]
                        del orders[side][px]
                        assert count == 0, "a deleted level has no orders"
            assert len(bids) == LEVELS and len(asks) == LEVELS
            assert max(bids) < min(asks)
            assert sorted(bids) == list(range(min(bids), min(bids) + LEVELS)), "contiguous levels"
            if bbo is not None:
                b, a = max(bids), min(asks)
                assert bbo == (b, bids[b], a, asks[a], orders[BID][b], orders[ASK][a]), "BBO is the book's top"
        nxt = market.anchor(inst, second + 1)
        assert (max(bids), min(asks)) == (nxt.bid, nxt.ask)
        # Each second ends on its anchor's order counts (the decomposition market-by-order depth starts from).
        assert orders == {side: {px: len(market.orders_of_level(inst, side, px, q))
                                 for px, q in nxt.levels(side).items()} for side in (BID, ASK)}
        volume = tape.volume_at_end


def test_prices_lie_on_the_tick_grid_as_exact_decimals():
    market = Market(seed=1, rates=RateTimeline(200))
    for code in ("ZN", "6E", "6J", "RTY"):
        inst = instrument(market, code)
        tape = market.tape(inst, SECOND).complete()
        for _usecs, trade, _bbo, _groups in tape.events:
            if trade is not None:
                price = inst.price(trade[0])
                assert repr(price) == repr(round(trade[0] * PRODUCTS[code].tick_size, inst.decimals))
                assert inst.ticks_of(price) == trade[0]
        assert inst.ticks_of(inst.price(100) + PRODUCTS[code].tick_size / 3) is None


def test_the_market_is_a_function_of_seed_symbol_second_and_rate():
    def trades(seed, code, second, rate):
        market = Market(seed=seed, rates=RateTimeline(rate))
        return market.tape(instrument(market, code), second).trades()

    assert trades(1, "ES", SECOND, 200) == trades(1, "ES", SECOND, 200)
    assert trades(1, "ES", SECOND, 200) != trades(2, "ES", SECOND, 200)
    assert trades(1, "ES", SECOND, 200) != trades(1, "NQ", SECOND, 200)
    assert trades(1, "ES", SECOND, 200) != trades(1, "ES", SECOND + 1, 200)
    assert len(trades(1, "ES", SECOND, 5000)) > len(trades(1, "ES", SECOND, 200))


def test_activity_comes_in_bursts_around_the_requested_rate():
    market = Market(seed=1, rates=RateTimeline(200))
    inst = instrument(market, "ES")
    counts = []
    for second in range(SECOND, SECOND + 120):
        tape = market.tape(inst, second, cache=False).complete()
        counts.append(sum(tape.counts(7, 0, len(tape))))
    assert 150 < sum(counts) / len(counts) < 260
    assert max(counts) > 3 * min(counts)


def test_rate_changes_apply_from_the_next_whole_second():
    rates = RateTimeline(200)
    assert rates.change(1000, 100.7) == 101
    assert rates.change(0, 150.2) == 151
    assert [rates.at(s) for s in (99, 100, 101, 150, 151, 10_000)] == [200, 200, 1000, 1000, 0, 0]
    assert list(rates.segments(95, 160)) == [(95, 101, 200), (101, 151, 1000), (151, 160, 0)]
    assert rates.change(300, 150.9) == 151, "a second change in the same second replaces the first"
    assert rates.at(151) == 300


def test_a_late_rate_change_does_not_rewrite_the_past():
    market = Market(seed=1, rates=RateTimeline(200))
    inst = instrument(market, "ES")
    before = market.tape(inst, SECOND, cache=False).trades()
    market.rates.change(5000, SECOND + 0.5)
    assert market.tape(inst, SECOND, cache=False).trades() == before
    assert market.tape(inst, SECOND + 1, cache=False).rate == 5000


def test_snapshot_state_matches_replaying_the_events():
    market = Market(seed=9, rates=RateTimeline(200))
    inst = instrument(market, "NQ")
    tape = market.tape(inst, SECOND).complete()
    half = len(tape) // 2
    state = book_at(market, inst, SECOND, half)
    assert state.as_of == (SECOND, tape.events[half - 1][0])
    last_bbo = next(ev[2] for ev in reversed(tape.events[:half]) if ev[2] is not None)
    assert state.bbo() == last_bbo  # prices, sizes and order counts
    assert book_at(market, inst, SECOND, 0).as_of == (SECOND - 1, ROLL_OFFSET)


def test_unknown_or_expired_contracts_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="ZZZZ9"):
        resolve_contract("ZZZZ9", "CME", NOW)
    with pytest.raises(ValueError, match="trades on CME"):
        resolve_contract("ESZ6", "NYMEX", NOW)
    with pytest.raises(ValueError, match="CBOT"):
        resolve_contract("ESZ6", "XCME", NOW)
    with pytest.raises(ValueError, match="not listed"):
        resolve_contract("ESU6", "CME", NOW)
    assert resolve_contract("esz6", "cme", NOW).symbol == "ESZ6"


def test_front_month_and_search_answer_from_the_catalogue():
    assert front_month_fields("ES", "CME", NOW)["trading_symbol"] == "ESZ6"
    assert front_month_fields("CL", "NYMEX", NOW)["trading_symbol"] == "CLF7"
    with pytest.raises(ValueError):
        front_month_fields("ES", "COMEX", NOW)
    rows = search("GC", "COMEX", None, 2, TODAY)
    assert rows and all(r["product_code"] in ("GC", "MGC") for r in rows)
    assert [r["symbol"] for r in search("ESZ6", None, None, 1, TODAY)] == ["ESZ6"]


# --- wire encoding ------------------------------------------------------------------------------


def test_hand_encoded_market_data_parses_like_the_protobuf_classes():
    rng = random.Random(5)
    for code in ("ES", "ZN", "6J"):
        inst = instrument(Market(seed=1, rates=RateTimeline(200)), code)
        enc = wire.HotEncoder(inst.symbol, inst.exchange, inst.price)
        for _ in range(200):
            second = SECOND + rng.randrange(100)
            usecs = rng.choice([0, 1, 127, 128, 16383, 16384, 999_999, rng.randrange(1_000_000)])
            tf = wire.ssboe_field(second) + wire.T_USECS + wire.varint(usecs)
            px = inst.base_ticks + rng.randrange(-50, 50)
            size, volume = rng.choice([1, 127, 128, 20000]), rng.randrange(1 << 40)
            aggressor = rng.choice([1, 2])
            common = dict(template_id=0, symbol=inst.symbol, exchange=inst.exchange, ssboe=second, usecs=usecs)

            got = pb.last_trade_pb2.LastTrade.FromString(payload(enc.last_trade(tf, (px, size, aggressor, volume))))
            want = pb.last_trade_pb2.LastTrade(
                **{**common, "template_id": 150},
                presence_bits=9,
                trade_price=inst.price(px),
                trade_size=size,
                aggressor=aggressor,
                volume=volume,
            )
            assert got == want

            quote = (px, size, px + 1, rng.randrange(1, 500), rng.choice([1, 127, 128, 300]), rng.randrange(1, 40))
            got = pb.best_bid_offer_pb2.BestBidOffer.FromString(payload(enc.bbo(tf, quote)))
            want = pb.best_bid_offer_pb2.BestBidOffer(
                **{**common, "template_id": 151},
                presence_bits=3,
                bid_price=inst.price(px),
                bid_size=size,
                bid_orders=quote[4],
                ask_price=inst.price(px + 1),
                ask_size=quote[3],
                ask_orders=quote[5],
            )
            assert got == want

            changes = []
            for k in range(rng.randrange(1, 25)):
                level = rng.choice([0, 1, 300])
                changes.append((rng.choice([BID, ASK]), px + k, level, 0, rng.choice([1, 127, 200]) if level else 0))
            update_type = 7 if len(changes) <= 2 and rng.random() < 0.7 else rng.choice([4, 5, 6])
            got = pb.order_book_pb2.OrderBook.FromString(payload(enc.book(tf, update_type, changes)))
            bids = [c for c in changes if c[0] == BID]
            asks = [c for c in changes if c[0] == ASK]
            want = pb.order_book_pb2.OrderBook(
                **{**common, "template_id": 156},
                presence_bits=(1 if bids else 0) | (2 if asks else 0),
                update_type=update_type,
                bid_price=[inst.price(c[1]) for c in bids],
                bid_size=[c[2] for c in bids],
                bid_orders=[c[4] for c in bids],
                ask_price=[inst.price(c[1]) for c in asks],
                ask_size=[c[2] for c in asks],
                ask_orders=[c[4] for c in asks],
            )
            assert got == want


def _frames(blob: bytes) -> list[bytes]:
    """The protobuf payloads of a run of server frames."""
    out, i = [], 0
    while i < len(blob):
        length = blob[i + 1] & 0x7F
        head = 2 if length < 126 else 4
        if length == 126:
            length = int.from_bytes(blob[i + 2 : i + 4], "big")
        out.append(payload(blob[i : i + head + length]))
        i += head + length
    return out


def test_trades_carry_the_exchange_time_in_nanoseconds_and_the_gateway_stamp_after_it():
    def stamps(seed):
        market = Market(seed=seed, rates=RateTimeline(5000))
        inst = instrument(market, "ES")
        out = []
        for second in range(SECOND, SECOND + 3):
            tape = market.tape(inst, second).complete()
            for body in _frames(tape.frames(1, 0, len(tape))):
                m = pb.last_trade_pb2.LastTrade.FromString(body)
                out.append((m.source_ssboe, m.source_usecs, m.source_nsecs, m.ssboe, m.usecs))
            events = {ev[0]: ev for ev in tape.events}
            assert [t[0] for t in tape.trade_times()] == [u for u, _p, _s, _a, _v in tape.trades()]
            assert all(events[u][1] is not None for u, *_ in tape.trade_times())
        return out

    got = stamps(1)
    assert len(got) > 1000
    exchange_ns = [s * 10**9 + ns for s, _us, ns, _gs, _gu in got]
    gateway_us = [gs * 10**6 + gu for *_, gs, gu in got]
    assert all(ns // 1000 == us for _s, us, ns, _gs, _gu in got), "source_usecs is source_nsecs in microseconds"
    assert exchange_ns == sorted(set(exchange_ns)), "exchange times strictly increase"
    assert gateway_us == sorted(gateway_us), "gateway stamps never run backwards"
    delays = [g - e // 1000 for e, g in zip(exchange_ns, gateway_us, strict=True)]
    assert min(delays) >= 150 and max(delays) <= 600 and max(delays) - min(delays) > 200
    assert len({ns % 1000 for _s, _us, ns, _gs, _gu in got}) > 500, "sub-microsecond digits vary"
    assert any(gs == s + 1 for s, _us, _ns, gs, _gu in got), "a late trade's gateway stamp is in the next second"
    assert stamps(1) == got, "the same seed gives the same nanoseconds and gateway stamps"
    assert stamps(2) != got


def test_trade_stamps_carry_into_the_next_second():
    nsecs, gs, gu = trade_stamps(12345, SECOND, 999_998)
    assert nsecs // 1000 == 999_998 and gs == SECOND + 1 and 148 <= gu <= 598


@pytest.mark.parametrize("value", [0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456,
                                   999_999_999, 1 << 35, (1 << 35) + 5])
def test_varint_matches_protobuf_at_every_length(value):
    ref = bytearray()
    v = value
    while v >= 0x80:
        ref.append((v & 0x7F) | 0x80)
        v >>= 7
    ref.append(v)
    assert wire.varint(value) == bytes(ref)


def test_hand_encoded_tick_replay_rows_parse_like_the_protobuf_classes():
    inst = instrument(Market(seed=1, rates=RateTimeline(200)), "ES")
    enc = wire.TickReplayEncoder(inst.symbol, inst.exchange, "ESZ6_CME", inst.price)
    for aggressor, side in ((1, "ask_volume"), (2, "bid_volume")):
        got = pb.response_tick_bar_replay_pb2.ResponseTickBarReplay.FromString(
            payload(enc.row(SECOND, 123_456, 24_000, 7, aggressor))
        )
        price = inst.price(24_000)
        want = pb.response_tick_bar_replay_pb2.ResponseTickBarReplay(
            template_id=207,
            user_msg=["ESZ6_CME"],
            rq_handler_rp_code=["0"],
            symbol="ESZ6",
            exchange="CME",
            type=1,
            sub_type=1,
            type_specifier="1",
            num_trades=1,
            volume=7,
            **{side: 7},
            open_price=price,
            close_price=price,
            high_price=price,
            low_price=price,
            data_bar_ssboe=[SECOND],
            data_bar_usecs=[123_456],
        )
        assert got == want


def test_frames_carry_the_length_prefix_inside_a_binary_websocket_frame():
    small = wire.frame(b"x" * 10)
    assert small[:2] == bytes([0x82, 14]) and small[2:6] == (10).to_bytes(4, "big")
    medium = wire.frame(b"y" * 5000)
    assert medium[:4] == b"\x82\x7e" + (5004).to_bytes(2, "big") and payload(medium) == b"y" * 5000
    template, msg = wire.parse(wire.frame(wire.build("RequestHeartbeat", user_msg=["a"]).SerializeToString())[2:])
    assert template == 18 and list(msg.user_msg) == ["a"]
    with pytest.raises(ValueError, match="length prefix"):
        wire.parse((99).to_bytes(4, "big") + b"\x08\x01")


def test_websocket_accept_key_is_the_rfc_6455_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# --- history pages ------------------------------------------------------------------------------


def test_tick_pages_hold_whole_seconds_and_chain_without_gaps():
    market = Market(seed=1, rates=RateTimeline(200))
    inst = instrument(market, "ES")
    now = SECOND + 1000.5
    start, finish = SECOND, SECOND + 60
    everything = [
        (SECOND + k, *t[:3], t[3])
        for k in range(60)
        for t in ((u, p, s, a) for u, p, s, a, _v in market.tape(inst, SECOND + k).trades())
    ]
    pages, cursor = [], start
    while True:
        page = asyncio.run(history.tick_page(market, inst, cursor, finish, now, limit=300))
        if not page:
            break
        assert len(page) <= 300 or len({r[0] for r in page}) == 1
        pages.append(page)
        cursor = page[-1][0] + 1  # what async_rithmic asks for next
    assert len(pages) > 3
    assert [r for p in pages for r in p] == everything
    assert all(p[-1][0] < q[0][0] for p, q in zip(pages, pages[1:], strict=False)), "no second split"


def test_history_stops_at_now():
    market = Market(seed=1, rates=RateTimeline(200))
    inst = instrument(market, "ES")
    now = SECOND + 0.5
    rows = asyncio.run(history.tick_page(market, inst, SECOND - 2, SECOND + 10, now))
    assert rows and rows[-1][0] == SECOND and rows[-1][1] <= 500_000


def test_time_bars_aggregate_the_same_trades():
    market = Market(seed=1, rates=RateTimeline(200))
    inst = instrument(market, "CL")
    bars = asyncio.run(history.time_bar_page(market, inst, 10, SECOND + 3, SECOND + 40, SECOND + 100.0))
    assert [b.marker for b in bars] == [SECOND + 10, SECOND + 20, SECOND + 30], "aligned, starting in range"
    trades = [t for k in range(10) for t in market.tape(inst, SECOND + 10 + k).trades()]
    bar = bars[0]
    assert (bar.open, bar.close) == (trades[0][1], trades[-1][1])
    assert (bar.high, bar.low) == (max(t[1] for t in trades), min(t[1] for t in trades))
    assert bar.volume == sum(t[2] for t in trades) == bar.bid_volume + bar.ask_volume
    assert bar.num_trades == len(trades)


# --- market by order ----------------------------------------------------------------------------


def apply_orders(live: dict[str, int], updates) -> None:
    for kind, _side, _px, size, _priority, oid in updates:
        if kind == 3:
            del live[oid]
        else:
            assert (kind == 1) == (oid not in live), "NEW for new orders, CHANGE for resting ones"
            live[oid] = size


def test_orders_at_a_price_always_add_up_to_the_level():
    market = Market(seed=3, rates=RateTimeline(1000))
    inst = instrument(market, "ES")
    anchor = market.anchor(inst, SECOND)
    for px in (anchor.bid, anchor.ask, anchor.bid - 4, anchor.ask + 1):
        orders = PriceOrders(market, inst, px)
        orders.start(SECOND)
        live: dict[str, int] = {o[0]: o[1] for o in orders.orders}
        for second in range(SECOND, SECOND + 3):
            tape = market.tape(inst, second).complete()
            for index, (usecs, _t, _b, groups) in enumerate(tape.events):
                if usecs == ROLL_OFFSET:
                    apply_orders(live, orders.roll_to(second + 1))
                else:
                    apply_orders(live, orders.apply_event(second, usecs, groups))
                state = book_at(market, inst, second, index + 1)
                assert sum(live.values()) == state.bids.get(px, 0) + state.asks.get(px, 0)
                # The book's order count at the price is the number of orders market-by-order shows there.
                assert len(live) == state.bid_orders.get(px, 0) + state.ask_orders.get(px, 0)
            apply_orders(live, orders.roll_to(second + 1))  # a second that ends without a book change
            fresh = PriceOrders(market, inst, px)
            fresh.start(second + 1)
            assert orders.orders == fresh.orders, "each second starts from the same orders"
            assert live == {o[0]: o[1] for o in fresh.orders}


# --- configuration and control API --------------------------------------------------------------


def test_command_line_defaults_and_options():
    cfg = from_args([])
    assert (cfg.host, cfg.port, cfg.control_port, cfg.seed, cfg.rate, cfg.users, cfg.tls) == (
        "127.0.0.1",
        8765,
        8766,
        1,
        200,
        {"demo": "demo"},
        False,
    )
    cfg = from_args(["--port", "9000", "--users", "a:b,c:d", "--rate", "0"],
                    env={"RDC_CLOCK_START": "2026-11-24T15:00:00Z", "RDC_CLOCK_SPEED": "60"})
    assert (cfg.control_port, cfg.users, cfg.rate, cfg.clock.today(), cfg.clock.speed) == (
        9001, {"a": "b", "c": "d"}, 0, TODAY, 60.0)
    with pytest.raises(SystemExit):
        from_args([], env={"RDC_CLOCK_START": "next tuesday"})
    with pytest.raises(SystemExit):
        from_args(["--users", "nopassword"])


def test_control_api_routes_and_refuses_bad_values():
    api = ControlApi(sim=None)
    with pytest.raises(HttpError) as missing:
        api.handle("GET", "/nowhere")
    assert missing.value.status == 404 and "/stats" in str(missing.value)
    with pytest.raises(HttpError) as wrong_method:
        api.handle("GET", "/faults/disconnect")
    assert wrong_method.value.status == 405
    for target in ("/rate", "/rate?value=-3", "/rate?value=x", "/faults/stall?seconds=soon"):
        with pytest.raises(HttpError) as bad:
            api.handle("POST", target)
        assert bad.value.status == 400
