"""Writing one table x day x symbol Parquet file from a stream of Arrow batches, and reading one back
to check it: the exact Arrow types of rdc_common.archive_layout, zstd, row groups of
ROW_GROUP_ROWS, page checksums, and the encodings that make market data small (delta for integers
and timestamps, dictionaries for prices, sizes and names)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rdc_common.archive_layout import (
    BOOL,
    FLOAT64,
    INT32,
    INT64,
    LIST_FLOAT64,
    LIST_INT32,
    ROW_GROUP_ROWS,
    SCHEMAS,
    STRING,
    TIMESTAMP,
    Column,
)

from .checksum import RowChecksum

_ARROW = {
    INT64: pa.int64(), INT32: pa.int32(), FLOAT64: pa.float64(), BOOL: pa.bool_(), STRING: pa.string(),
    TIMESTAMP: pa.timestamp("us", tz="UTC"), LIST_FLOAT64: pa.list_(pa.float64()), LIST_INT32: pa.list_(pa.int32()),
}
# Integer and timestamp columns change by small steps from row to row (ids, exchange times, volumes):
# delta encoding stores the steps. Everything else repeats a few values (prices on the tick grid,
# sizes, symbol, side): dictionaries.
_DELTA_TYPES = (INT64, INT32, TIMESTAMP)


class ArchiveDataError(ValueError):
    """Rows that cannot be archived as they are (a NULL in a NOT NULL column, rows out of order)."""


def arrow_schema(table: str, columns: tuple[Column, ...] | None = None) -> pa.Schema:
    cols = columns or SCHEMAS[table]
    return pa.schema([pa.field(c.name, _ARROW[c.type], nullable=c.nullable) for c in cols],
                     metadata={b"rdc.table": table.encode()})


def writer_options(columns: tuple[Column, ...]) -> dict:
    delta = [c.name for c in columns if c.type in _DELTA_TYPES]
    return {
        "compression": "zstd",
        "use_dictionary": [c.name for c in columns if c.name not in delta],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
        "write_statistics": True,
        "write_page_index": True,
        "write_page_checksum": True,
    }


@dataclass(frozen=True)
class FileStats:
    rows: int
    bytes: int
    sha256: str
    checksum: str
    min_timestamp: dt.datetime | None
    max_timestamp: dt.datetime | None
    min_id: int | None
    max_id: int | None


def sha256_of(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _conform(batch: pa.RecordBatch, schema: pa.Schema, columns: tuple[Column, ...]) -> pa.RecordBatch:
    """The batch with exactly the archive's types (the reader's own field metadata dropped)."""
    if batch.schema.names != schema.names:
        raise ArchiveDataError(f"rows came with columns {batch.schema.names}, expected {schema.names}")
    arrays = []
    for arr, f, col in zip(batch.columns, schema, columns, strict=True):
        if not col.nullable and arr.null_count:
            raise ArchiveDataError(f"column {col.name} is NOT NULL in the schema but {arr.null_count} rows have NULL")
        arrays.append(arr if arr.type == f.type else arr.cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class _Order:
    """Checks the stream is in (timestamp, id) order and keeps its min/max timestamp and id."""

    def __init__(self) -> None:
        self.last: tuple[int, int] | None = None
        self.first_ts = self.last_ts = None
        self.min_id: int | None = None
        self.max_id: int | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        ts = batch.column("timestamp").view(pa.int64()).to_numpy()
        ids = batch.column("id").to_numpy()
        prev_ts = np.concatenate(([self.last[0]], ts[:-1])) if self.last else ts[:-1]
        prev_id = np.concatenate(([self.last[1]], ids[:-1])) if self.last else ids[:-1]
        cur_ts, cur_id = (ts, ids) if self.last else (ts[1:], ids[1:])
        if np.any((cur_ts < prev_ts) | ((cur_ts == prev_ts) & (cur_id <= prev_id))):
            raise ArchiveDataError("rows are not in (timestamp, id) order")
        if self.first_ts is None:
            self.first_ts = int(ts[0])
        self.last = (int(ts[-1]), int(ids[-1]))
        self.last_ts = self.last[0]
        mm = pc.min_max(batch.column("id"))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        self.min_id = lo if self.min_id is None else min(self.min_id, lo)
        self.max_id = hi if self.max_id is None else max(self.max_id, hi)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(us: int | None) -> dt.datetime | None:
    return None if us is None else _EPOCH + dt.timedelta(microseconds=us)


def write_file(batches: Iterable[pa.RecordBatch], table: str, path: Path, *, metadata: dict[str, str] | None = None,
               on_rows=None) -> FileStats:
    """Write the stream into `path` (a new file), computing the row checksum as rows pass; `on_rows(n)`
    after each batch (progress). Rows must arrive in (timestamp, id) order."""
    columns = SCHEMAS[table]
    schema = arrow_schema(table)
    if metadata:
        schema = schema.with_metadata({**schema.metadata, **{k.encode(): v.encode() for k, v in metadata.items()}})
    checksum = RowChecksum(columns)
    order = _Order()
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pq.ParquetWriter(str(path), schema, **writer_options(columns)) as writer:
        def flush(final: bool) -> None:
            nonlocal pending, pending_rows
            if not pending:
                return
            tbl = pa.Table.from_batches(pending, schema=schema)
            cut = (pending_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS if not final else pending_rows
            for start in range(0, cut, ROW_GROUP_ROWS):
                writer.write_table(tbl.slice(start, min(ROW_GROUP_ROWS, cut - start)), row_group_size=ROW_GROUP_ROWS)
            rest = tbl.slice(cut)
            pending = rest.to_batches() if rest.num_rows else []
            pending_rows = rest.num_rows

        for raw in batches:
            batch = _conform(raw, schema, columns)
            if batch.num_rows == 0:
                continue
            order.add(batch)
            checksum.update(batch)
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                flush(final=False)
            if on_rows is not None:
                on_rows(batch.num_rows)
        flush(final=True)
    sha, size = sha256_of(path)
    return FileStats(rows=checksum.rows, bytes=size, sha256=sha, checksum=checksum.hexdigest(),
                     min_timestamp=_ts(order.first_ts), max_timestamp=_ts(order.last_ts),
                     min_id=order.min_id, max_id=order.max_id)


def read_back(path: Path, table: str) -> tuple[int, str, str, int]:
    """(rows, row checksum, sha256, bytes) of a Parquet file as a reader sees it, checking its schema
    and every page's CRC. Raises ArchiveDataError (or pyarrow's error) for a damaged file."""
    columns = SCHEMAS[table]
    expected = arrow_schema(table)
    pf = pq.ParquetFile(str(path), page_checksum_verification=True)
    got = pf.schema_arrow
    if got.names != expected.names or any(a.type != b.type for a, b in zip(got, expected, strict=True)):
        raise ArchiveDataError(f"{path.name} has columns {got} instead of the archive schema of {table}")
    checksum = RowChecksum(columns)
    for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS, use_threads=True):
        checksum.update(batch)
    if checksum.rows != pf.metadata.num_rows:
        raise ArchiveDataError(f"{path.name} says {pf.metadata.num_rows} rows but {checksum.rows} could be read")
    sha, size = sha256_of(path)
    return checksum.rows, checksum.hexdigest(), sha, size
