"""The collector's live state for the web console: wire frames through the real ingest (with a real,
unstarted BatchWriter as its sink) into each symbol's book, trades and BBO, and the document the
publisher would write to Redis."""

from __future__ import annotations

import datetime as dt

import pytest
from async_rithmic import protocol_buffers as pb

from collector_ecs.ingest import Ingest
from collector_ecs.live import DEPTH, TRADES_KEPT, LivePublisher, MarketState, live_key
from collector_ecs.parsing import LEVEL2, TICK
from collector_ecs.spool import Spool
from collector_ecs.writer import BatchWriter
from rdc_common.book import BookRow, replay
from rdc_common.clock import ManualClock

pytestmark = pytest.mark.unit

T0 = 1_795_532_400  # 2026-11-24T15:00:00Z
OB = pb.order_book_pb2.OrderBook
LT = pb.last_trade_pb2.LastTrade
BBO = pb.best_bid_offer_pb2.BestBidOffer


def frame(msg) -> bytes:
    body = msg.SerializeToString()
    return len(body).to_bytes(4, "big") + body


def book_msg(kind, bids=(), asks=(), symbol="ESZ6", usecs=0):
    return frame(OB(template_id=156, symbol=symbol, exchange="CME", update_type=kind,
                    bid_price=[b[0] for b in bids], bid_size=[b[1] for b in bids], bid_orders=[b[2] for b in bids],
                    ask_price=[a[0] for a in asks], ask_size=[a[1] for a in asks], ask_orders=[a[2] for a in asks],
                    ssboe=T0, usecs=usecs))


def trade_msg(i, price, size=1, aggressor=1, symbol="ESZ6"):
    return frame(LT(template_id=150, symbol=symbol, exchange="CME", presence_bits=LT.PresenceBits.LAST_TRADE,
                    trade_price=price, trade_size=size, aggressor=aggressor, ssboe=T0 + i // 1000,
                    usecs=(i % 1000) * 1000))


@pytest.fixture
def setup(tmp_path):
    writer = BatchWriter("postgresql://unused", batch_size=100_000, flush_interval_s=1, max_pending_rows=1_000_000,
                         db_timeout_s=1, spool=Spool(tmp_path / "spool", 1 << 20), on_dropped=None)
    market = MarketState()
    ingest = Ingest(writer, clock=ManualClock(T0 + 5), live=market)
    publisher = LivePublisher(market, ingest.quotes, "redis://unused", ManualClock(T0 + 5),
                              last_message_at=lambda: ingest.last_message_at)
    return writer, ingest, market, publisher


SNAPSHOT_BIDS = [(6000.0 - 0.25 * k, 10 + k, 1 + k % 4) for k in range(15)]
SNAPSHOT_ASKS = [(6000.25 + 0.25 * k, 20 + k, 2 + k % 3) for k in range(15)]


def document(publisher, symbol="ESZ6") -> dict:
    import json

    return json.loads(publisher.documents({symbol})[live_key(symbol)])


def test_the_document_has_the_top_levels_last_trades_and_bbo(setup):
    writer, ingest, market, publisher = setup
    assert ingest.handle(book_msg(OB.UpdateType.SNAPSHOT_IMAGE, SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    ingest.handle(book_msg(OB.UpdateType.SOLO, bids=[(6000.0, 0, 0)]))  # the best bid leaves
    ingest.handle(book_msg(OB.UpdateType.BEGIN, asks=[(6000.25, 99, 7)]))
    for i in range(TRADES_KEPT + 20):
        ingest.handle(trade_msg(i, 6000.25 if i % 2 else 6000.0, size=1 + i % 5, aggressor=1 + i % 2))
    ingest.handle(frame(BBO(template_id=151, symbol="ESZ6", exchange="CME", presence_bits=BBO.PresenceBits.BID
                            | BBO.PresenceBits.ASK, bid_price=5999.75, bid_size=11, bid_orders=2, ask_price=6000.25,
                            ask_size=99, ask_orders=7, ssboe=T0, usecs=999)))
    assert market.take_changed() == {"ESZ6"}
    doc = document(publisher)
    bids, asks = doc["book"]["bids"], doc["book"]["asks"]
    assert len(bids) == len(asks) == DEPTH and doc["book"]["trusted"] is True
    assert bids[0] == {"price": 5999.75, "size": 11, "orders": 2}
    assert asks[0] == {"price": 6000.25, "size": 99, "orders": 7}
    assert [b["price"] for b in bids] == sorted((b["price"] for b in bids), reverse=True)
    assert max(b["price"] for b in bids) < min(a["price"] for a in asks)
    # The same book the API rebuilds from the rows the writer was given.
    rows = [BookRow(*r[3:10]) for r in writer._buffers[LEVEL2]]
    assert replay(rows).levels(DEPTH) == (bids, asks)
    trades = doc["trades"]
    assert len(trades) == TRADES_KEPT
    stored = writer._buffers[TICK]
    newest = stored[-1]
    assert trades[0] == doc["last_trade"] == {"timestamp": newest[0].isoformat(timespec="microseconds"),
                                              "price": newest[3], "size": newest[4], "aggressor": newest[5]}
    assert [t["timestamp"] for t in trades] == sorted((t["timestamp"] for t in trades), reverse=True)
    assert doc["bbo"] == {"bid_price": 5999.75, "bid_size": 11, "bid_orders": 2, "ask_price": 6000.25,
                          "ask_size": 99, "ask_orders": 7}
    assert doc["published_at"] == dt.datetime.fromtimestamp(T0 + 5, dt.UTC).isoformat(timespec="microseconds")
    assert doc["symbol"] == "ESZ6" and doc["exchange"] == "CME"


def test_after_an_outage_the_book_is_empty_and_untrusted_until_a_new_snapshot(setup):
    writer, ingest, market, publisher = setup
    ingest.handle(book_msg(OB.UpdateType.SNAPSHOT_IMAGE, SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    ingest.mark_outage(["ESZ6"])
    doc = document(publisher)
    assert doc["book"] == {"trusted": False, "depth": DEPTH, "bids": [], "asks": []}
    ingest.handle(book_msg(OB.UpdateType.SOLO, bids=[(5990.0, 5, 1)]))  # dropped: no snapshot yet
    assert document(publisher)["book"]["bids"] == []
    ingest.handle(book_msg(OB.UpdateType.SNAPSHOT_IMAGE, [(5995.0, 3, 1)], [(5995.25, 4, 2)]))
    doc = document(publisher)
    assert doc["book"] == {"trusted": True, "depth": DEPTH, "bids": [{"price": 5995.0, "size": 3, "orders": 1}],
                           "asks": [{"price": 5995.25, "size": 4, "orders": 2}]}


def test_symbols_are_kept_apart_and_only_changed_ones_are_published(setup):
    _, ingest, market, publisher = setup
    ingest.handle(book_msg(OB.UpdateType.SNAPSHOT_IMAGE, SNAPSHOT_BIDS[:2], SNAPSHOT_ASKS[:2]))
    ingest.handle(trade_msg(1, 60.5, symbol="CLF7"))
    assert market.take_changed() == {"ESZ6", "CLF7"}
    assert market.take_changed() == set()
    ingest.handle(trade_msg(2, 60.75, symbol="CLF7"))
    assert set(publisher.documents(market.take_changed())) == {live_key("CLF7")}
    cl = document(publisher, "CLF7")
    assert cl["book"]["bids"] == [] and [t["price"] for t in cl["trades"]] == [60.75, 60.5]


def test_with_live_snapshots_off_the_ingest_keeps_nothing_extra(tmp_path):
    writer = BatchWriter("postgresql://unused", batch_size=100_000, flush_interval_s=1, max_pending_rows=1_000_000,
                         db_timeout_s=1, spool=Spool(tmp_path / "spool", 1 << 20), on_dropped=None)
    ingest = Ingest(writer, clock=ManualClock(T0), live=None)
    assert ingest.handle(book_msg(OB.UpdateType.SNAPSHOT_IMAGE, SNAPSHOT_BIDS, SNAPSHOT_ASKS))
    assert ingest.handle(trade_msg(1, 6000.0))
    ingest.mark_outage(["ESZ6"])
    assert len(writer._buffers[LEVEL2]) == 1 and len(writer._buffers[TICK]) == 1


@pytest.mark.parametrize("raw, on", [(None, True), ("1", True), ("on", True), ("0", False), ("false", False)])
def test_live_snapshots_are_on_unless_turned_off(raw, on):
    from collector_ecs.config import load_settings

    env = {"RITHMIC_USER": "u", "RITHMIC_PASSWORD": "p", "CONFIG_FILE": "/nonexistent.json"}
    if raw is not None:
        env["LIVE_SNAPSHOTS"] = raw
    assert load_settings(env).live_snapshots is on


def test_a_malformed_live_snapshots_setting_stops_start_up_naming_it():
    from collector_ecs.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="LIVE_SNAPSHOTS must be 1 or 0"):
        load_settings({"RITHMIC_USER": "u", "RITHMIC_PASSWORD": "p", "CONFIG_FILE": "/nonexistent.json",
                       "LIVE_SNAPSHOTS": "sometimes"})
