"""The Parquet archive's layout: where each file lives, what its columns are, what a day's manifest
says, and how a file's row checksum is defined.

Pure (standard library only), so the archiver (collector_ecs.archive), the API's archive tier (it
vendors rdc_common into the Lambda) and the CDK's Glue tables all read one definition.

Layout, Hive-style, under ARCHIVE_URL (`s3://bucket/prefix` or a local directory):

    <table>/date=YYYY-MM-DD/symbol=<SYMBOL>/part-0.parquet    one file per table x UTC day x symbol
    <table>/date=YYYY-MM-DD/_manifest.json                      the day's files, counts and checksums

Names starting with `_` or `.` are not data (Hive, Athena, Spark and DuckDB globs skip them).

Row checksum `rdc-rows-sha256-v1`: the rows in file order (symbol, timestamp, id); for each column in
schema order, four SHA-256 streams are fed:
  validity  one byte per row, 1 for a value, 0 for NULL;
  values    each non-NULL value: int64 / int32 little-endian two's complement; float64 as its IEEE-754
            bits, little-endian (so -0.0 and NaN payloads count); bool as one byte 0/1; a timestamp as
            int64 microseconds since 1970-01-01T00:00:00Z; a string as its UTF-8 bytes;
  lengths   for strings: uint32 LE byte length of each non-NULL value; for lists: uint32 LE element
            count of each non-NULL list;
  children  for lists: the elements of the non-NULL lists, in order, hashed as a column of their own
            (its validity, values, lengths), so an element NULL is distinguished from a value.
The column digest is SHA-256 of the concatenated digests of validity, values, lengths and children (a
stream nothing was fed, such as the lengths of an integer column, is SHA-256 of nothing); the checksum
is SHA-256 over, per column, its UTF-8 name, a 0x00 byte and its digest, written as hex. It depends
on the rows and their order only, not on how they are chunked, encoded or compressed, so PostgreSQL's
rows and the Parquet file give the same value (`reference_checksum` computes it from plain Python
values, e.g. asyncpg records).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

UTC = dt.UTC
TABLES = ("tick_data", "quote_data", "level2_data")
# The API's names for the same tables (its routes are /api/ticks, /api/quotes, /api/level2).
TABLE_ALIASES = {"ticks": "tick_data", "quotes": "quote_data", "level2": "level2_data"}
FILE_NAME = "part-0.parquet"
MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "rdc-archive-manifest"
MANIFEST_VERSION = 1
CHECKSUM_ALGORITHM = "rdc-rows-sha256-v1"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
# Rows per row group: a reader paging through a day (the API asks for 1,000 rows after a cursor)
# decodes one group of this size at most, and min/max statistics per group let it skip the rest.
ROW_GROUP_ROWS = 65_536

# Logical column types, each with its PostgreSQL type (format_type), Glue/Athena type and DuckDB type.
INT64, INT32, FLOAT64, BOOL, STRING, TIMESTAMP = "int64", "int32", "float64", "bool", "string", "timestamp[us, UTC]"
LIST_FLOAT64, LIST_INT32 = "list<float64>", "list<int32>"
PG_TYPES = {
    INT64: "bigint", INT32: "integer", FLOAT64: "double precision", BOOL: "boolean", STRING: "text",
    TIMESTAMP: "timestamp with time zone", LIST_FLOAT64: "double precision[]", LIST_INT32: "integer[]",
}
GLUE_TYPES = {
    INT64: "bigint", INT32: "int", FLOAT64: "double", BOOL: "boolean", STRING: "string", TIMESTAMP: "timestamp",
    LIST_FLOAT64: "array<double>", LIST_INT32: "array<int>",
}
# Partition columns, as Hive paths and Glue's partition keys name them (their values are strings).
PARTITION_KEYS = ("date", "symbol")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.type]

    @property
    def glue_type(self) -> str:
        return GLUE_TYPES[self.type]

    @property
    def element_type(self) -> str | None:
        return self.type[5:-1] if self.type.startswith("list<") else None


def _cols(*spec: tuple) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in spec)


# Every column of each table, in the order of sql/. A column the database has and this does not is
# an error the archiver reports (never a column silently left out of the archive): add it here,
# with its type, when a migration adds it.
SCHEMAS: dict[str, tuple[Column, ...]] = {
    "tick_data": _cols(
        ("id", INT64), ("timestamp", TIMESTAMP), ("symbol", STRING), ("exchange", STRING), ("price", FLOAT64),
        ("size", INT32), ("aggressor", STRING, True), ("cumulative_volume", INT64, True),
        ("received_at", TIMESTAMP), ("backfilled", BOOL),
        ("timestamp_ns", INT64, True), ("gateway_at", TIMESTAMP, True),  # sql/005_trade_clocks.sql
    ),
    "quote_data": _cols(
        ("id", INT64), ("timestamp", TIMESTAMP), ("symbol", STRING), ("exchange", STRING),
        ("bid_price", FLOAT64, True), ("bid_size", INT32, True), ("bid_orders", INT32, True),
        ("ask_price", FLOAT64, True), ("ask_size", INT32, True), ("ask_orders", INT32, True),
        ("received_at", TIMESTAMP),
    ),
    "level2_data": _cols(
        ("id", INT64), ("timestamp", TIMESTAMP), ("symbol", STRING), ("exchange", STRING), ("update_type", STRING),
        ("bid_price", LIST_FLOAT64), ("bid_size", LIST_INT32), ("bid_orders", LIST_INT32),
        ("ask_price", LIST_FLOAT64), ("ask_size", LIST_INT32), ("ask_orders", LIST_INT32),
        ("received_at", TIMESTAMP),
    ),
}


class LayoutError(ValueError):
    """A name, path or manifest that does not fit the layout; the message says which and why."""


def table_name(raw: str) -> str:
    """`tick_data`, `quote_data`, `level2_data`, or the API's `ticks`, `quotes`, `level2`."""
    name = TABLE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in SCHEMAS:
        raise LayoutError(f"unknown table {raw!r}: use one of {', '.join(TABLES)} "
                          f"(or {', '.join(TABLE_ALIASES)})")
    return name


def schema_mismatch(table: str, catalog: Mapping[str, str]) -> list[str]:
    """Sentences for every difference between the declared schema and the database's columns
    (`catalog`: name -> format_type, e.g. from pg_attribute); empty when they agree."""
    declared = {c.name: c.pg_type for c in SCHEMAS[table]}
    problems = []
    for name, pg_type in catalog.items():
        if name not in declared:
            problems.append(f"{table}.{name} ({pg_type}) is not in the archive schema: add it to "
                            f"rdc_common/archive_layout.py SCHEMAS so it is archived, not dropped")
        elif declared[name] != pg_type:
            problems.append(f"{table}.{name} is {pg_type} in the database but {declared[name]} in the archive "
                            f"schema: update rdc_common/archive_layout.py")
    for name in declared:
        if name not in catalog:
            problems.append(f"{table}.{name} is in the archive schema but not in the database: run the "
                            f"migrations, or remove it from rdc_common/archive_layout.py")
    return problems


# -- paths -------------------------------------------------------------------------------------------

_HIVE_SAFE = "-_.~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def hive_escape(value: str) -> str:
    """A partition value as Hive writes it in a path: anything but letters, digits and -_.~ as %XX."""
    if not value:
        raise LayoutError("a partition value cannot be empty")
    return quote(value, safe=_HIVE_SAFE)


def day_dir(table: str, day: dt.date) -> str:
    return f"{table}/date={day.isoformat()}"


def file_key(table: str, day: dt.date, symbol: str) -> str:
    """Path of one table x day x symbol file, relative to ARCHIVE_URL."""
    return f"{day_dir(table, day)}/symbol={hive_escape(symbol)}/{FILE_NAME}"


def manifest_key(table: str, day: dt.date) -> str:
    return f"{day_dir(table, day)}/{MANIFEST_NAME}"


_FILE_KEY = re.compile(r"^([a-z0-9_]+)/date=(\d{4}-\d{2}-\d{2})/symbol=([^/]+)/" + re.escape(FILE_NAME) + "$")


def parse_file_key(key: str) -> tuple[str, dt.date, str]:
    """(table, day, symbol) of a file key; LayoutError for anything else."""
    m = _FILE_KEY.match(key)
    if not m or m.group(1) not in SCHEMAS:
        raise LayoutError(f"{key!r} is not an archive file path (<table>/date=YYYY-MM-DD/symbol=S/{FILE_NAME})")
    return m.group(1), dt.date.fromisoformat(m.group(2)), unquote(m.group(3))


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a UTC day."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


# -- manifest ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileEntry:
    symbol: str
    path: str
    rows: int
    bytes: int
    sha256: str  # of the file's bytes
    checksum: str  # of its rows (CHECKSUM_ALGORITHM)
    min_timestamp: dt.datetime | None
    max_timestamp: dt.datetime | None
    min_id: int | None
    max_id: int | None

    def as_json(self) -> dict:
        return {"symbol": self.symbol, "path": self.path, "rows": self.rows, "bytes": self.bytes,
                "sha256": self.sha256, "checksum": self.checksum,
                "min_timestamp": _iso(self.min_timestamp), "max_timestamp": _iso(self.max_timestamp),
                "min_id": self.min_id, "max_id": self.max_id}


@dataclass(frozen=True)
class Manifest:
    table: str
    day: dt.date
    files: tuple[FileEntry, ...]
    archived_at: dt.datetime
    columns: tuple[Column, ...] = field(default=())

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def as_json(self) -> dict:
        stamps = [f.min_timestamp for f in self.files if f.min_timestamp] + \
                 [f.max_timestamp for f in self.files if f.max_timestamp]
        return {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "table": self.table,
            "date": self.day.isoformat(), "rows": self.rows, "bytes": self.bytes,
            "min_timestamp": _iso(min(stamps)) if stamps else None,
            "max_timestamp": _iso(max(stamps)) if stamps else None,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable}
                        for c in (self.columns or SCHEMAS[self.table])],
            "files": [f.as_json() for f in sorted(self.files, key=lambda f: f.symbol)],
            "archived_at": _iso(self.archived_at),
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.as_json(), indent=1) + "\n").encode()


def load_manifest(raw: bytes | str) -> Manifest:
    """A manifest from its JSON; LayoutError when it is not one this layout writes."""
    try:
        doc = json.loads(raw)
        if doc.get("format") != MANIFEST_FORMAT or doc.get("version") != MANIFEST_VERSION:
            raise LayoutError(f"not a version {MANIFEST_VERSION} {MANIFEST_FORMAT}")
        files = tuple(FileEntry(
            symbol=f["symbol"], path=f["path"], rows=int(f["rows"]), bytes=int(f["bytes"]), sha256=f["sha256"],
            checksum=f["checksum"], min_timestamp=_parse_ts(f["min_timestamp"]),
            max_timestamp=_parse_ts(f["max_timestamp"]), min_id=f["min_id"], max_id=f["max_id"])
            for f in doc["files"])
        columns = tuple(Column(c["name"], c["type"], bool(c["nullable"])) for c in doc["columns"])
        return Manifest(doc["table"], dt.date.fromisoformat(doc["date"]), files, _parse_ts(doc["archived_at"]),
                        columns)
    except (ValueError, KeyError, TypeError) as exc:
        raise LayoutError(f"unreadable archive manifest: {exc}") from None


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


def _parse_ts(raw: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(raw) if raw else None


# -- the row checksum, from plain Python values -------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_PACK = {INT64: struct.Struct("<q"), INT32: struct.Struct("<i"), FLOAT64: struct.Struct("<d")}
_U32 = struct.Struct("<I")


def _value_bytes(kind: str, value) -> bytes:
    if kind in _PACK:
        if kind == FLOAT64 and isinstance(value, float) and math.isnan(value):
            return struct.pack("<d", value)  # keeps the payload of the NaN it was given
        return _PACK[kind].pack(value)
    if kind == BOOL:
        return b"\x01" if value else b"\x00"
    if kind == TIMESTAMP:
        delta = value - _EPOCH
        return struct.pack("<q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if kind == STRING:
        return value.encode()
    raise LayoutError(f"no checksum encoding for {kind}")


class _ColumnHash:
    def __init__(self, kind: str):
        self.kind = kind
        self.validity, self.values, self.lengths = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
        element = kind[5:-1] if kind.startswith("list<") else None
        self.child = _ColumnHash(element) if element else None

    def add(self, value) -> None:
        if value is None:
            self.validity.update(b"\x00")
            return
        self.validity.update(b"\x01")
        if self.child is not None:
            self.lengths.update(_U32.pack(len(value)))
            for element in value:
                self.child.add(element)
            return
        encoded = _value_bytes(self.kind, value)
        self.values.update(encoded)
        if self.kind == STRING:
            self.lengths.update(_U32.pack(len(encoded)))

    def digest(self) -> bytes:
        parts = [self.validity.digest(), self.values.digest(), self.lengths.digest()]
        parts.append(self.child.digest() if self.child is not None else hashlib.sha256().digest())
        return hashlib.sha256(b"".join(parts)).digest()


def combine_column_digests(digests: Sequence[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, digest in digests:
        h.update(name.encode() + b"\x00" + digest)
    return h.hexdigest()


def reference_checksum(columns: Sequence[Column], rows: Iterable[Sequence]) -> str:
    """The row checksum computed value by value (slow; the archiver computes the same over Arrow
    arrays). `rows` are sequences in `columns` order, in file order: datetimes, ints, floats,
    bools, strs, lists (or tuples), None."""
    hashes = [_ColumnHash(c.type) for c in columns]
    for row in rows:
        for h, value in zip(hashes, row, strict=True):
            h.add(value)
    return combine_column_digests([(c.name, h.digest()) for c, h in zip(columns, hashes, strict=True)])
