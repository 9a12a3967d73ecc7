"""`python -m rdc_client`: download a range of ticks, quotes, level2 or bars to CSV or Parquet.

    python -m rdc_client ticks ESZ6 --start 2026-11-23 --end 2026-11-24 --format parquet -o esz6.parquet
    python -m rdc_client bars ESZ6 --start 2026-11-01 --end 2026-12-01 --interval 1h -o esz6-1h.csv

The API is RDC_API_URL (default http://127.0.0.1:8080, what `make run` serves) and its key
RDC_API_KEY (an environment variable rather than an option, so it never shows in a process list).
Rows are written page by page as they arrive, so a range larger than memory still downloads; the
file reads back (pandas.read_parquet, or read_csv) as the same DataFrame `Client.ticks` returns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import frames
from .client import INTERVALS, Client, parse_time
from .errors import RdcApiError

DEFAULT_URL = "http://127.0.0.1:8080"
FORMATS = ("csv", "parquet")
LEVEL_TYPE = pa.list_(pa.struct([("price", pa.float64()), ("size", pa.int64()), ("orders", pa.int64())]))


def arrow_schema(shape: frames.Shape) -> pa.Schema:
    """The Parquet schema of a kind of row: pandas' own mapping of its dtypes (kept in the file's
    metadata, so pandas reads the same dtypes back), with the book levels typed explicitly."""
    schema = pa.Schema.from_pandas(frames.frame([], shape), preserve_index=False)
    for name in shape.nested:
        schema = schema.set(schema.get_field_index(name), pa.field(name, LEVEL_TYPE))
    return schema


class Writer:
    """Appends DataFrames of one shape to a CSV or Parquet file."""

    def __init__(self, path: Path, fmt: str, shape: frames.Shape):
        self.path, self.fmt, self.shape = path, fmt, shape
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv_started = False
        self._schema = arrow_schema(shape) if fmt == "parquet" else None

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, self._schema)
            self._parquet.write_table(pa.Table.from_pandas(df, schema=self._schema, preserve_index=False))
        else:
            out = df.copy() if self.shape.nested else df
            for name in self.shape.nested:
                out[name] = [json.dumps(v) for v in out[name]]
            out.to_csv(self.path, mode="a" if self._csv_started else "w", header=not self._csv_started,
                       index=False)
            self._csv_started = True
        self.rows += len(df)

    def close(self) -> None:
        if self.rows == 0:
            self.write(frames.frame([], self.shape))  # an empty file still has the columns
        if self._parquet is not None:
            self._parquet.close()


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower().lstrip(".")
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix == "csv":
        return "csv"
    raise SystemExit(f"rdc_client: say --format csv or --format parquet (the output {args.output} has neither "
                     f"suffix)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rdc_client", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="kind", required=True, metavar="{ticks,quotes,level2,bars}")
    for kind, text in (("ticks", "trades"), ("quotes", "best bid/offer rows"), ("level2", "order-book messages"),
                       ("bars", "OHLCV bars")):
        s = sub.add_parser(kind, help=f"download {text} in [start, end)")
        s.add_argument("symbol", help="e.g. ESZ6 (or a continuous symbol such as ES.c.0 where the API has them)")
        s.add_argument("--start", required=True, help="inclusive: ISO-8601 time or a date (UTC when no offset)")
        s.add_argument("--end", required=True, help="exclusive, same formats")
        s.add_argument("--format", choices=FORMATS, help="default: from the output's suffix")
        s.add_argument("-o", "--output", required=True, help="the file to write (replaced if it exists)")
        s.add_argument("--url", default=None, help=f"the API (default $RDC_API_URL or {DEFAULT_URL})")
        s.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
        if kind == "bars":
            s.add_argument("--interval", default="1m", choices=list(INTERVALS))
    return p


def _frames(client: Client, args: argparse.Namespace, progress: bool | None) -> Iterable[pd.DataFrame]:
    if args.kind == "bars":
        yield client.bars(args.symbol, args.start, args.end, args.interval, progress=progress)
    else:
        yield from client.iter_frames(args.kind, args.symbol, args.start, args.end, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fmt = _format(args)
    try:  # a typo in a time is reported before anything is asked of the API
        parse_time(args.start, "--start")
        parse_time(args.end, "--end")
    except ValueError as exc:
        print(f"rdc_client: {exc}", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("RDC_API_URL") or DEFAULT_URL
    shape = frames.BARS if args.kind == "bars" else frames.ROW_SHAPES[args.kind]
    output = Path(args.output)
    started = time.monotonic()
    progress = False if args.no_progress else None
    tmp = output.with_name(output.name + ".part")
    writer = Writer(tmp, fmt, shape)
    try:
        with Client(url, os.environ.get("RDC_API_KEY") or None) as client:
            for df in _frames(client, args, progress):
                writer.write(df)
        writer.close()
    except RdcApiError as exc:
        writer.close()
        tmp.unlink(missing_ok=True)
        print(f"rdc_client: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Whole or not at all: an interrupted download never leaves a file that looks complete.
    tmp.replace(output)
    took = time.monotonic() - started
    print(json.dumps({"event": "written", "file": str(output), "format": fmt, "rows": writer.rows,
                      "seconds": round(took, 2)}), file=sys.stderr)
    return 0
