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
