"""The benchmarks run at tiny sizes and produce every documented figure. No timing is asserted
here (timings belong in the results, not in a test); only that each path ran and measured."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from async_rithmic import protocol_buffers as pb
from google.protobuf.json_format import MessageToDict

from bench import report, stock
from collector_ecs import parsing

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
T = dt.datetime(2026, 11, 24, 14, 30, 0, 123456, tzinfo=dt.UTC)
RECEIVED = T + dt.timedelta(milliseconds=3)


def _library_dict(message) -> dict:
    """What async_rithmic's on_tick delivers for a message (its own _response_to_dict, plus datetime)."""
    d = MessageToDict(message, preserving_proto_field_name=True, use_integers_for_enums=True)
    d["datetime"] = dt.datetime.fromtimestamp(message.ssboe, dt.UTC).replace(microsecond=message.usecs)
    return d


def test_the_stock_path_builds_the_rows_the_collector_builds():
    """(a) differs from the collector only in how a frame becomes a row, never in the row."""
    lt = pb.last_trade_pb2.LastTrade
    trade = lt(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=lt.PresenceBits.LAST_TRADE
               | lt.PresenceBits.VOLUME, trade_price=6012.25, trade_size=3, aggressor=2, volume=123456,
               ssboe=int(T.timestamp()), usecs=T.microsecond)
    assert stock.trade_row(_library_dict(trade), RECEIVED) == parsing.decode_trade(trade.SerializeToString(), RECEIVED)
    with_source = lt(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=lt.PresenceBits.LAST_TRADE,
                     trade_price=6012.25, trade_size=1, aggressor=1, source_ssboe=int(T.timestamp()),
                     source_usecs=T.microsecond, source_nsecs=T.microsecond * 1000 + 789,
                     ssboe=int(T.timestamp()), usecs=T.microsecond + 350)
    row = parsing.decode_trade(with_source.SerializeToString(), RECEIVED)
    assert stock.trade_row(_library_dict(with_source), RECEIVED) == row and row[9] % 1000 == 789
    volume_only = lt(template_id=150, symbol="ESZ6", exchange="CME", presence_bits=lt.PresenceBits.VOLUME,
                     volume=5, ssboe=int(T.timestamp()))
    assert stock.trade_row(_library_dict(volume_only), RECEIVED) is None
    assert parsing.decode_trade(volume_only.SerializeToString(), RECEIVED) is None

    bbo = pb.best_bid_offer_pb2.BestBidOffer
    quotes, book = stock.QuoteState(), parsing.QuoteBook()
    for m in (bbo(template_id=151, symbol="ESZ6", exchange="CME", presence_bits=bbo.PresenceBits.BID,
                  bid_price=6012.0, bid_size=7, bid_orders=2, ssboe=int(T.timestamp()), usecs=1),
              bbo(template_id=151, symbol="ESZ6", exchange="CME", presence_bits=bbo.PresenceBits.ASK,
                  ask_price=6012.25, ask_size=4, ssboe=int(T.timestamp()), usecs=2),
              bbo(template_id=151, symbol="ESZ6", exchange="CME", clear_bits=bbo.PresenceBits.BID,
                  ssboe=int(T.timestamp()), usecs=3)):
        assert quotes.row(_library_dict(m), RECEIVED) == book.decode(m.SerializeToString(), RECEIVED)

    ob = pb.order_book_pb2.OrderBook
    update = ob(template_id=156, symbol="ESZ6", exchange="CME", update_type=ob.UpdateType.SOLO,
                bid_price=[6012.0], bid_size=[9], ssboe=int(T.timestamp()), usecs=4)
    assert stock.book_row(update, RECEIVED) == parsing.decode_book(update.SerializeToString(), RECEIVED)


def test_every_key_the_bench_produces_is_documented():
    readme = (REPO / "bench" / "README.md").read_text()
    undocumented = [k for k in report.KEYS if f"`{k}`" not in readme and not _documented_by_pattern(k, readme)]
    assert undocumented == []


def _documented_by_pattern(key: str, readme: str) -> bool:
    """api.endpoints.<endpoint>.<path>.<p50_ms|p99_ms> and scale.<tier>.* are documented as patterns."""
    parts = key.split(".")
    if parts[:2] == ["api", "endpoints"]:
        return "`api.endpoints.<endpoint>.<path>.p50_ms`" in readme and f"`{parts[2]}`" in readme \
            and f"`{parts[3]}`" in readme
    if parts[0] == "scale":
        return f"`scale.<tier>.{'.'.join(parts[2:])}`" in readme
    return False


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k != "QUICK"}
    res = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out), "--no-wait"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert (out / "tiny.md").read_text().startswith("Run of ")
    return json.loads((out / "tiny.json").read_text())


def test_a_tiny_run_produces_every_key(tiny_run):
    assert report.missing_keys(tiny_run) == []


def test_every_path_measured_something(tiny_run):
    flat = report.flatten(tiny_run)
    # Differences between two measurements (the ingest cost of live snapshots) may come out at or
    # below zero in a short run: they are measured, but not necessarily positive.
    positive = [k for k in report.KEYS if k.startswith(("ingest.", "api.", "scale.", "simulator."))
                and not k.endswith("cpu_share.postgres") and not k.endswith("cpu_share.simulator")
                and not k.endswith("_pct")]
    assert [k for k in positive if not (isinstance(flat[k], int | float) and flat[k] > 0)] == []
    assert flat["freshness_ms.p50"] > 0 and flat["freshness_ms.p99"] >= flat["freshness_ms.p50"]
    assert tiny_run["freshness_ms"]["rows"] > 0
    assert all(isinstance(flat[f"targets.{t}.met"], bool | None) for t in tiny_run["targets"])
