"""The PostgreSQL side of the archive: the tables' columns and daily partitions, the symbols and row
counts of a day, the bulk read of one table x day x symbol as Arrow batches, and the archive's own
bookkeeping (`archived_days`, `archive_manifests`, sql/007_archive.sql).

Bookkeeping and catalog queries go through asyncpg. The bulk read goes through the ADBC PostgreSQL
driver, which runs the query as a binary COPY and decodes it into Arrow in C++: several times faster
than building Python objects per value (see bench/README.md, archive), and exact to the microsecond
and the bit. Every statement is constant text with $n parameters; the one statement that cannot take
parameters (COPY's query) is assembled by PostgreSQL's own format() with %I and %L.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pyarrow as pa

from rdc_common.archive_layout import SCHEMAS, TABLES, day_bounds

ADVISORY_LOCK_KEY = 0x5244_4315  # one archive run at a time per database

CATALOG = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

PARTITIONS = """
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass($1)
"""

# Per table, since table names are fixed (never input): the days with rows in the default partition,
# and the rows of a day per symbol (both partitions a day's rows may be in: its own and the default).
_DEFAULT_DAYS = {t: f'SELECT DISTINCT ("timestamp" AT TIME ZONE \'UTC\')::date AS day FROM {t}_default '
                    f'WHERE "timestamp" < $1 ORDER BY 1' for t in TABLES}
_SYMBOL_COUNTS = {t: f'SELECT symbol, count(*) AS n FROM {t} WHERE "timestamp" >= $1 AND "timestamp" < $2 '
                     f'GROUP BY symbol ORDER BY symbol' for t in TABLES}

EXPORT_QUERY = """
SELECT format('SELECT %s FROM %I WHERE symbol = %L AND "timestamp" >= %L AND "timestamp" < %L ORDER BY "timestamp", id',
              (SELECT string_agg(quote_ident(c), ', ' ORDER BY n) FROM unnest($1::text[]) WITH ORDINALITY AS u(c, n)),
              $2::text, $3::text, $4::timestamptz, $5::timestamptz)
"""

LOCK_SHARE = "SELECT format('LOCK TABLE %I IN SHARE MODE', $1::text)"
DROP_TABLE = "SELECT format('DROP TABLE %I', $1::text)"
_DELETE_DEFAULT = {t: f'DELETE FROM {t}_default WHERE "timestamp" >= $1 AND "timestamp" < $2' for t in TABLES}

UPSERT_FILE = """
INSERT INTO archived_days (table_name, day, symbol, rows, bytes, checksum, sha256, path, min_ts, max_ts,
                           min_id, max_id, archived_at, verified_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
ON CONFLICT (table_name, day, symbol) DO UPDATE SET
    rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, checksum = EXCLUDED.checksum, sha256 = EXCLUDED.sha256,
    path = EXCLUDED.path, min_ts = EXCLUDED.min_ts, max_ts = EXCLUDED.max_ts, min_id = EXCLUDED.min_id,
    max_id = EXCLUDED.max_id, archived_at = EXCLUDED.archived_at, verified_at = EXCLUDED.verified_at
"""

FILES_OF_DAY = """
SELECT table_name, day, symbol, rows, bytes, checksum, sha256, path, min_ts, max_ts, min_id, max_id, archived_at
FROM archived_days WHERE table_name = $1 AND day = $2 ORDER BY symbol
"""

# A (table, day) is archived when its manifest is: every symbol's file was written and verified first.
UPSERT_MANIFEST = """
INSERT INTO archive_manifests (table_name, day, symbols, rows, bytes, path, written_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (table_name, day) DO UPDATE SET
    symbols = EXCLUDED.symbols, rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, path = EXCLUDED.path,
    written_at = EXCLUDED.written_at
"""
FORGET_MANIFEST = "DELETE FROM archive_manifests WHERE table_name = $1 AND day = $2"
MANIFESTS = "SELECT day, pg_dropped_at FROM archive_manifests WHERE table_name = $1"
MANIFEST_OF_DAY = "SELECT day, pg_dropped_at FROM archive_manifests WHERE table_name = $1 AND day = $2"
MARK_DROPPED = "UPDATE archive_manifests SET pg_dropped_at = $3 WHERE table_name = $1 AND day = $2"
# Files of days whose rows PostgreSQL still holds: a damaged one can still be written again.
FILES_STILL_IN_PG = """
SELECT f.table_name, f.day, f.symbol, f.bytes, f.path
FROM archived_days f JOIN archive_manifests m USING (table_name, day)
WHERE f.table_name = $1 AND m.pg_dropped_at IS NULL
ORDER BY f.day, f.symbol
"""
ALL_FILES = """
SELECT f.table_name, f.day, f.symbol, f.rows, f.bytes, f.checksum, f.sha256, f.path, m.pg_dropped_at
FROM archived_days f LEFT JOIN archive_manifests m USING (table_name, day)
WHERE f.table_name = $1 ORDER BY f.day, f.symbol
"""

SESSION_SETTINGS = ("SET enable_sort = off", "SET max_parallel_workers_per_gather = 0")

_PARTITION_NAME = re.compile(r"^(?P<table>[a-z0-9_]+)_(?P<day>\d{8})$")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    day: dt.date


async def catalog_columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    return {r["name"]: r["type"] for r in await conn.fetch(CATALOG, table)}


async def daily_partitions(conn: asyncpg.Connection, table: str) -> list[Partition]:
    """The table's daily partitions (`<table>_YYYYMMDD`, sql/001_schema.sql), oldest first."""
    out = []
    for r in await conn.fetch(PARTITIONS, table):
        m = _PARTITION_NAME.match(r["name"])
        if r["bound"] == "DEFAULT" or not m or m.group("table") != table:
            continue
        out.append(Partition(table, r["name"], dt.datetime.strptime(m.group("day"), "%Y%m%d").date()))
    return sorted(out, key=lambda p: p.day)


async def default_partition_days(conn: asyncpg.Connection, table: str, before: dt.date) -> list[dt.date]:
    """Days before `before` with rows in the default partition (rows written for a day that had no
    partition of its own when they arrived)."""
    return [r["day"] for r in await conn.fetch(_DEFAULT_DAYS[table], day_bounds(before)[0])]


async def symbol_counts(conn: asyncpg.Connection, table: str, day: dt.date) -> dict[str, int]:
    start, end = day_bounds(day)
    return {r["symbol"]: r["n"] for r in await conn.fetch(_SYMBOL_COUNTS[table], start, end)}


def export_args(table: str, day: dt.date, symbol: str) -> tuple:
    """EXPORT_QUERY's parameters: it returns the SELECT that reads one table x day x symbol in file order."""
    start, end = day_bounds(day)
    return [c.name for c in SCHEMAS[table]], table, symbol, start, end


async def delete_default_rows(conn: asyncpg.Connection, table: str, day: dt.date) -> str:
    start, end = day_bounds(day)
    return await conn.execute(_DELETE_DEFAULT[table], start, end)


async def lock_share(conn: asyncpg.Connection, relname: str) -> None:
    await conn.execute(await conn.fetchval(LOCK_SHARE, relname))


async def drop_table(conn: asyncpg.Connection, relname: str) -> None:
    await conn.execute(await conn.fetchval(DROP_TABLE, relname))


class BulkReader:
    """One ADBC connection (autocommit: no long-open snapshot) streaming query results as Arrow batches.

    `batches(sql)` reads on a background thread into a small queue, so PostgreSQL's COPY and the
    driver's decoding run while the caller hashes and compresses the previous batches."""

    def __init__(self, dsn: str):
        self._dsn = dsn
        self._conn = None

    def connect(self) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self._conn = adbc.connect(self._dsn, autocommit=True)
        with self._conn.cursor() as cur:
            # A file streams in (symbol, timestamp, id) index order: no sort (which spills a day of book
            # updates to disk) and no parallel workers (which take the cores the archive's own workers use).
            # Measured on a day of four symbols: a file's COPY 165-210 ms this way, 205-395 ms as planned.
            for setting in SESSION_SETTINGS:
                cur.execute(setting)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def batches(self, sql: str, depth: int = 4) -> Iterator[pa.RecordBatch]:
        q: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                with self._conn.cursor() as cur:
                    cur.execute(sql)
                    for batch in cur.fetch_record_batch():
                        while not stop.is_set():
                            try:
                                q.put(batch, timeout=0.5)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                q.put(done)
            except BaseException as exc:  # handed to the consumer, which raises it
                q.put(exc)

        thread = threading.Thread(target=produce, name="archive-read", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    q.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()
