"""JSON logs (one line per event, fields beside the message) and CloudWatch
embedded-metric-format lines, which CloudWatch Logs turns into metrics without an API call."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections import defaultdict

NAMESPACE = "RithmicDataCollector"


# async_rithmic puts whole requests in its log lines and exception texts, the login's
# password included (e.g. "Rithmic returned an error=... for the request={... 'password': ...}").
_SECRET_FIELD = re.compile(r"""(['"]?(?:password|passwd|api_key|x-api-key)['"]?\s*[:=]\s*)(['"])(?:(?!\2).)*\2""",
                           re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET_FIELD.sub(r"\1\2***\2", text)


class RedactSecrets(logging.Filter):
    """Scrubs secrets from a record's message and exception before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            # Keep the exception's one-line summary, never its traceback's locals or reprs.
            msg += " | " + "".join(traceback.format_exception_only(record.exc_info[1])).strip()
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(msg)
        record.args = ()
        return True


def redact_library_logs() -> None:
    """Put the redaction on every handler that may see async_rithmic's records."""
    for logger in (logging.getLogger("rithmic"), logging.getLogger()):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.formatter.converter = time.gmtime
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # async_rithmic adds its own stdout handler; one structured line per event is enough.
    logging.getLogger("rithmic").handlers[:] = []
    # async_rithmic logs every request at DEBUG with MessageToDict; keep it at INFO+.
    logging.getLogger("rithmic").setLevel(max(logging.INFO, logging.getLevelName(level)))


class Metrics:
    """Counters and gauges flushed as one EMF line per interval."""

    def __init__(self, emit=print):
        self._counts: dict[str, float] = defaultdict(float)
        self._rows: dict[str, float] = defaultdict(float)
        self._gauges: dict[str, float] = {}
        self._latency: dict[str, dict] = {}
        self._emit = emit

    def count(self, name: str, value: float = 1) -> None:
        self._counts[name] += value

    def rows(self, table: str, value: int) -> None:
        self._rows[table] += value

    def gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value

    def latency(self, by_symbol: dict[str, dict]) -> None:
        """Exchange-to-collector latency per symbol ({symbol: {"p50_ms", "p99_ms", "samples"}}),
        flushed as one line per symbol with a Symbol dimension."""
        self._latency = dict(by_symbol)

    def flush(self, collector_id: str) -> None:
        now = int(time.time() * 1000)
        names = list(self._counts) + list(self._gauges)
        doc = {"_aws": {"Timestamp": now, "CloudWatchMetrics": [{
            # No dimensions: one collector per deployment, and the dashboard and alarms read
            # these metrics plain. The collector id rides along as a property for searches.
            "Namespace": NAMESPACE, "Dimensions": [[]],
            "Metrics": [{"Name": n, "Unit": "Count" if n in self._counts else "None"} for n in names]}]},
            "Collector": collector_id, **self._counts, **self._gauges}
        self._emit(json.dumps(doc))
        for table, n in self._rows.items():
            self._emit(json.dumps({"_aws": {"Timestamp": now, "CloudWatchMetrics": [{
                "Namespace": NAMESPACE, "Dimensions": [["Table"]],
                "Metrics": [{"Name": "RowsWritten", "Unit": "Count"}]}]}, "Table": table, "RowsWritten": n}))
        for symbol, lat in self._latency.items():
            self._emit(json.dumps({"_aws": {"Timestamp": now, "CloudWatchMetrics": [{
                "Namespace": NAMESPACE, "Dimensions": [["Symbol"]],
                "Metrics": [{"Name": "ExchangeToCollectorP50", "Unit": "Milliseconds"},
                            {"Name": "ExchangeToCollectorP99", "Unit": "Milliseconds"}]}]},
                "Symbol": symbol, "ExchangeToCollectorP50": lat["p50_ms"],
                "ExchangeToCollectorP99": lat["p99_ms"], "LatencySamples": lat["samples"]}))
        self._counts.clear()
        self._rows.clear()
        self._latency = {}
