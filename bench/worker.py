"""The processes under test, each started by the bench as `python -m bench.worker <kind> ...` so it
has a core to itself while the simulator and PostgreSQL run in processes of their own:

    stock      stock async_rithmic callbacks -> the collector's BatchWriter, until SIGTERM
    decode     the collector's fast receive path with a sink that only decodes; prints a JSON result
    fresh      the collector itself (settings from the environment, as `python -m collector_ecs`)
               with the writer's on_committed hook recording (commit time - exchange time) per row
    api        the API in-process (the Lambda handler, `app(event, context)`) and the raw SQL +
               JSON encoding of the same rows; writes a JSON result

Results go to stdout (decode) or to the --out file; logs go wherever the bench sends stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import pickle
import signal
import sys
import time
from pathlib import Path

from collector_ecs import parsing

UTC = dt.UTC
_now = dt.datetime.now
_split_frame, _decode_trade, _decode_book = parsing.split_frame, parsing.decode_trade, parsing.decode_book
_T_BBO, _T_LAST_TRADE, _T_ORDER_BOOK = parsing.T_BBO, parsing.T_LAST_TRADE, parsing.T_ORDER_BOOK


def _symbols(raw: str) -> list[tuple[str, str]]:
    return [tuple(item.split(":", 1)) for item in raw.split(",") if item]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _ready(**fields) -> None:
    print(json.dumps({"ready": True, **fields}), flush=True)


def _client(url: str):
    from collector_ecs.rithmic_internals import make_client

    # make_client adds only the ws:// SSL fix and finite reconnect settings to RithmicClient.
    return make_client(user="demo", password="demo", system_name="Rithmic Paper Trading", app_name="rdc-bench",
                       app_version="1", url=url, ca_file=None, max_reconnect_delay=1.0)


def _writer_defaults() -> dict:
    """The collector's own writer settings, so both paths write the same way."""
    from collector_ecs.config import Settings

    f = Settings.__dataclass_fields__
    return {"batch_size": f["batch_size"].default, "flush_interval_s": f["flush_interval_ms"].default / 1000,
            "max_pending_rows": f["max_pending_rows"].default, "db_timeout_s": f["db_timeout_s"].default}


# -- (a) stock async_rithmic ------------------------------------------------------------------

async def run_stock(args) -> None:
    from async_rithmic.enums import DataType, SysInfraType

    from collector_ecs.parsing import LEVEL2, QUOTE, TICK
    from collector_ecs.spool import Spool
    from collector_ecs.writer import BatchWriter

    from .stock import QuoteState, book_row, trade_row

    stop = _stop_event()
    writer = BatchWriter(args.database_url, spool=Spool(Path(args.spool), 1 << 30), **_writer_defaults())
    await writer.start()
    quotes = QuoteState()
    last_trade = DataType.LAST_TRADE
    add_tick, add_quote, add_level2 = writer.appender(TICK), writer.appender(QUOTE), writer.appender(LEVEL2)
    seen = [0]

    async def backpressure() -> None:
        # As the collector does: the writer's `full` check (which also starts a flush of any full
        # batch) every 1024 rows, waiting while the queue is at its bound.
        seen[0] += 1
        if not seen[0] & 1023 and writer.full:
            await writer.wait_for_space()

    def fail(exc: Exception) -> None:
        # async_rithmic logs a callback's exception and carries on; a benchmark must not.
        print(f"stock callback failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(3)

    async def on_tick(data: dict) -> None:
        try:
            received = _now(UTC)
            if data["data_type"] == last_trade:
                row = trade_row(data, received)
                if row is not None:
                    add_tick(row)
            else:
                add_quote(quotes.row(data, received))
        except Exception as exc:
            fail(exc)
        await backpressure()

    async def on_order_book(message) -> None:
        try:
            add_level2(book_row(message, _now(UTC)))
        except Exception as exc:
            fail(exc)
        await backpressure()

    client = _client(args.url)
    client.on_tick += on_tick
    client.on_order_book += on_order_book
    await client.connect(plants=[SysInfraType.TICKER_PLANT])
    bits = DataType.LAST_TRADE | DataType.BBO | DataType.ORDER_BOOK
    for symbol, exchange in _symbols(args.symbols):
        await client.subscribe_to_market_data(symbol, exchange, bits)
    _ready()
    await stop.wait()
    await client.disconnect(timeout=2.0)
    await writer.close()


# -- (b) bare decoding -------------------------------------------------------------------------

class DecodeSink:
    """A FrameSink that decodes market data into rows and drops them (keeping a sample).

    Written like the collector's Ingest.handle, minus the writer and the bookkeeping."""

    full = False

    def __init__(self, sample_rows: int):
        self.quotes = parsing.QuoteBook()
        self.messages = 0
        self.sample: list[tuple[str, tuple]] = []
        self.sample_rows = sample_rows
        self.sampling = False

    def handle(self, frame: bytes, received=None) -> bool:
        tid, payload = _split_frame(frame)
        received = received or _now(UTC)
        if tid == _T_ORDER_BOOK:
            row, table = _decode_book(payload, received), "level2_data"
        elif tid == _T_BBO:
            row, table = self.quotes.decode(payload, received), "quote_data"
        elif tid == _T_LAST_TRADE:
            row, table = _decode_trade(payload, received), "tick_data"
        else:
            return False
        self.messages += 1
        if self.sampling and row is not None and len(self.sample) < self.sample_rows:
            self.sample.append((table, row))
        return True

    async def wait_for_space(self) -> None:  # never full
        return None

    def on_connection_lost(self, exc) -> None:
        pass


async def run_decode(args) -> tuple[dict, list]:
    from async_rithmic.enums import DataType, SysInfraType

    from collector_ecs.rithmic_internals import install_fast_path

    sink = DecodeSink(args.sample_rows)
    client = _client(args.url)
    install_fast_path(client.plants["ticker"], sink)
    await client.connect(plants=[SysInfraType.TICKER_PLANT])
    bits = DataType.LAST_TRADE | DataType.BBO | DataType.ORDER_BOOK
    for symbol, exchange in _symbols(args.symbols):
        await client.subscribe_to_market_data(symbol, exchange, bits)
    await asyncio.sleep(args.warmup)
    sink.sampling = True
    n0, t0, c0 = sink.messages, time.monotonic(), time.process_time()
    await asyncio.sleep(args.seconds)
    n1, t1, c1 = sink.messages, time.monotonic(), time.process_time()
    sink.sampling = False
    return {"messages": n1 - n0, "seconds": t1 - t0, "cpu_s": c1 - c0, "sample_rows": len(sink.sample)}, sink.sample


def decode_main(args) -> None:
    result, sample = asyncio.run(run_decode(args))
    if args.sample_out:
        with open(args.sample_out, "wb") as fh:
            pickle.dump(sample, fh, protocol=5)
    print(json.dumps(result), flush=True)


# -- freshness: the collector with the commit hook -----------------------------------------

async def run_fresh(args) -> dict:
    from collector_ecs.config import load_settings
    from collector_ecs.observability import setup_logging
    from collector_ecs.service import Collector

    settings = load_settings()
    setup_logging(settings.log_level)
    stop = _stop_event()
    collector = Collector(settings, metrics_emit=lambda line: None)
    await collector.start()
    clock = settings.clock  # rows carry the clock's times (the bench pins it): lags are on it too
    record_from = clock.now() + args.warmup
    lags: list[float] = []
    batch_s: list[float] = []
    per_table: dict[str, int] = {}
    span = [None, None]
    writer = collector.writer

    def on_committed(batch, _real_commit_time: float) -> None:
        commit_time = clock.now()
        if commit_time < record_from:
            return
        lags.extend([commit_time - row[0].timestamp() for row in batch.rows])
        batch_s.append(writer.last_batch_ms / 1000)  # set by the writer just before this call
        per_table[batch.table] = per_table.get(batch.table, 0) + len(batch.rows)
        if span[0] is None:
            span[0] = commit_time
        span[1] = commit_time

    if not hasattr(collector.writer, "on_committed"):
        raise RuntimeError("collector_ecs.writer.BatchWriter has no on_committed hook; freshness cannot be measured")
    collector.writer.on_committed = on_committed
    _ready()
    await stop.wait()
    collector.writer.on_committed = None
    await collector.stop()
    lags.sort()
    batch_s.sort()
    batch_ms = {k: round(v * 1000, 1) for k, v in _quantiles(batch_s).items()}
    return {"lags_s": _quantiles(lags), "rows": len(lags), "per_table": per_table,
            "first_commit": span[0], "last_commit": span[1], "batch_ms": batch_ms,
            "rows_per_batch": round(len(lags) / len(batch_s)) if batch_s else 0}


def _quantiles(sorted_values: list[float]) -> dict:
    from .stats import quantile

    if not sorted_values:
        return {}
    return {"p50": quantile(sorted_values, 0.50), "p90": quantile(sorted_values, 0.90),
            "p99": quantile(sorted_values, 0.99), "max": sorted_values[-1], "min": sorted_values[0]}


# -- API in-process and raw --------------------------------------------------------------------

def run_api(args) -> None:
    from . import apiwork

    spec = json.loads(Path(args.spec).read_text())
    result = apiwork.measure_in_process(spec)
    Path(args.out).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("stock")
    s.add_argument("--url", required=True)
    s.add_argument("--symbols", required=True, help="SYMBOL:EXCHANGE,...")
    s.add_argument("--database-url", required=True)
    s.add_argument("--spool", required=True)
    d = sub.add_parser("decode")
    d.add_argument("--url", required=True)
    d.add_argument("--symbols", required=True)
    d.add_argument("--warmup", type=float, default=2.0)
    d.add_argument("--seconds", type=float, default=5.0)
    d.add_argument("--sample-rows", type=int, default=0)
    d.add_argument("--sample-out")
    f = sub.add_parser("fresh")
    f.add_argument("--warmup", type=float, default=2.0)
    f.add_argument("--out", required=True)
    a = sub.add_parser("api")
    a.add_argument("--spec", required=True)
    a.add_argument("--out", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.kind == "stock":
        asyncio.run(run_stock(args))
    elif args.kind == "decode":
        decode_main(args)
        # No logout: with the socket still flooded it would only time out.
        os._exit(0)
    elif args.kind == "fresh":
        Path(args.out).write_text(json.dumps(asyncio.run(run_fresh(args))))
    else:
        run_api(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
