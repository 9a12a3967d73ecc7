"""Metrics leave as CloudWatch embedded-metric-format lines that CloudWatch can parse."""

import json

import pytest

from collector_ecs.observability import NAMESPACE, Metrics

pytestmark = pytest.mark.unit


def test_emf_lines_declare_every_value_they_carry():
    lines = []
    m = Metrics(emit=lines.append)
    m.count("Reconnects", 2)
    m.gauge("QueueDepth", 17)
    m.rows("tick_data", 500)
    m.flush("c1")
    docs = [json.loads(x) for x in lines]
    main, rows = docs
    declared = main["_aws"]["CloudWatchMetrics"][0]
    assert declared["Namespace"] == NAMESPACE and declared["Dimensions"] == [[]]  # as the CDK dashboard reads them
    assert {d["Name"] for d in declared["Metrics"]} == {"Reconnects", "QueueDepth"}
    assert (main["Reconnects"], main["QueueDepth"], main["Collector"]) == (2, 17, "c1")
    assert rows["Table"] == "tick_data" and rows["RowsWritten"] == 500
    assert rows["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Table"]]
    m.flush("c1")
    assert json.loads(lines[-1]).get("Reconnects") is None  # counters restart each interval


def test_latency_is_summarised_per_symbol_off_the_hot_path_from_recent_trades():
    import datetime as dt
    from collections import deque

    from collector_ecs.ingest import latency_summary

    t0 = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)
    epoch_ns = (t0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000

    def trade(i, latency_us, with_ns=True):
        received = t0 + dt.timedelta(milliseconds=i)
        exchange_ns = epoch_ns + i * 1_000_000 - latency_us * 1000 - 250  # 250 ns below the microsecond
        ts = t0 + dt.timedelta(microseconds=(exchange_ns - epoch_ns) // 1000)
        return (ts, "ESZ6", "CME", 1.0, 1, "BUY", None, received, False, exchange_ns if with_ns else None, None)

    recent = {"ESZ6": deque(trade(i, 100 + i) for i in range(1, 101)),
              "CLF7": deque([trade(1, 5000, with_ns=False)])}
    since: dict = {}
    out = latency_summary(recent, since)
    assert out["ESZ6"]["samples"] == 100
    assert out["ESZ6"]["p50_ms"] == (150 * 1000 + 250) / 1e6  # nearest rank: the 50th of 101..200 us
    assert out["ESZ6"]["p99_ms"] == (199 * 1000 + 250) / 1e6
    # without nanoseconds the exchange time is its whole microsecond (5,000.25 us became 5,001)
    assert out["CLF7"] == {"p50_ms": 5.001, "p99_ms": 5.001, "samples": 1, "as_of": recent["CLF7"][-1][7]}
    assert latency_summary(recent, since) == {}, "each trade is summarised once"
    recent["ESZ6"].append(trade(101, 7))
    assert latency_summary(recent, since)["ESZ6"]["samples"] == 1

    lines = []
    m = Metrics(emit=lines.append)
    m.latency(out)
    m.flush("c1")
    by_symbol = {d["Symbol"]: d for d in map(json.loads, lines) if "Symbol" in d}
    assert by_symbol["ESZ6"]["ExchangeToCollectorP99"] == out["ESZ6"]["p99_ms"]
    assert by_symbol["ESZ6"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Symbol"]]
    m.flush("c1")
    assert not any("Symbol" in json.loads(x) for x in lines[len(by_symbol) + 1:]), "sent once per summary"
