"""Stored market data for the API and scale benchmarks, generated inside PostgreSQL.

Rows are made by `INSERT ... SELECT FROM generate_series` in the server (no client round trip per
row, so faster than COPY from a client), into the migrated schema through the partitioned parent
tables, with the three tables in the mix the simulator produces and the counters the writer would
have maintained. Density is constant (`day_rows` per day), so a bigger store is more days, as a
recorder's store grows: an API request over one day does the same work at every size and only
the size of the store changes.

Values are deterministic functions of the row number: the same sizes give the same data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field

import asyncpg

UTC = dt.UTC
DAY = dt.timedelta(days=1)
TABLES = ("tick_data", "quote_data", "level2_data")
# Share of each table in what the simulator sends (measured: 14% trades, 32% quotes, 54% book).
MIX = {"tick_data": 0.14, "quote_data": 0.32, "level2_data": 0.54}
# Book snapshots per symbol per hour (Rithmic sends one after each (re)subscription).
SNAPSHOTS_PER_HOUR = 1
CHUNK_ROWS = 1_000_000  # rows per INSERT statement

# $1 first timestamp, $2 seconds between rows, $3..$4 row numbers, $5 symbols, $6 exchanges, $7 base prices.
# Row g belongs to symbol g % 4; prices follow a slow deterministic wave around each base price.
_ROWS = """
    SELECT g, s.sym[1 + g % {n}] AS symbol, s.exch[1 + g % {n}] AS exchange,
           $1::timestamptz + make_interval(secs => g * $2::float8) AS ts,
           floor(s.base[1 + g % {n}] * (1 + 0.01 * sin(g / 7919.0)) * 100) / 100 AS px
    FROM generate_series($3::bigint, $4::bigint) AS g,
         (SELECT $5::text[] AS sym, $6::text[] AS exch, $7::float8[] AS base) AS s
"""

# As the collector stores a live trade: exchange nanoseconds (sub-microsecond digits from g) and the
# gateway's stamp a few hundred microseconds later.
INSERT_TICKS = """
INSERT INTO tick_data ("timestamp", symbol, exchange, price, size, aggressor, cumulative_volume, received_at,
                       backfilled, timestamp_ns, gateway_at)
SELECT ts, symbol, exchange, px, 1 + (g * 7) % 9, CASE WHEN g % 3 = 0 THEN 'SELL' ELSE 'BUY' END, g,
       ts + interval '2 milliseconds', false,
       (extract(epoch FROM date_trunc('microseconds', ts)) * 1000000)::bigint * 1000 + (g * 7919) % 1000,
       ts + make_interval(secs => (150 + (g * 31) % 451) / 1e6)
FROM ({rows}) AS r
"""

INSERT_QUOTES = """
INSERT INTO quote_data ("timestamp", symbol, exchange, bid_price, bid_size, bid_orders, ask_price, ask_size,
                        ask_orders, received_at)
SELECT ts, symbol, exchange, px - 0.01, 1 + (g * 5) % 30, 0, px + 0.01, 1 + (g * 11) % 30, 0,
       ts + interval '2 milliseconds'
FROM ({rows}) AS r
"""

# SOLO updates of one level on one side, as the simulator sends; every $8-th row of a symbol a
# ten-level SNAPSHOT_IMAGE of both sides.
INSERT_BOOK = """
INSERT INTO level2_data ("timestamp", symbol, exchange, update_type, bid_price, bid_size, bid_orders,
                         ask_price, ask_size, ask_orders, received_at)
SELECT ts, symbol, exchange, CASE WHEN snap THEN 'SNAPSHOT_IMAGE' ELSE 'SOLO' END,
       CASE WHEN snap THEN ARRAY[px, px - .01, px - .02, px - .03, px - .04, px - .05, px - .06, px - .07,
                                 px - .08, px - .09]
            WHEN g % 2 = 0 THEN ARRAY[px - .01] ELSE '{{}}'::float8[] END,
       CASE WHEN snap THEN ARRAY[10, 12, 14, 16, 18, 20, 22, 24, 26, 28]
            WHEN g % 2 = 0 THEN ARRAY[1 + (g * 5) % 30] ELSE '{{}}'::int[] END,
       '{{}}'::int[],
       CASE WHEN snap THEN ARRAY[px + .01, px + .02, px + .03, px + .04, px + .05, px + .06, px + .07, px + .08,
                                 px + .09, px + .10]
            WHEN g % 2 = 1 THEN ARRAY[px + .01] ELSE '{{}}'::float8[] END,
       CASE WHEN snap THEN ARRAY[11, 13, 15, 17, 19, 21, 23, 25, 27, 29]
            WHEN g % 2 = 1 THEN ARRAY[1 + (g * 11) % 30] ELSE '{{}}'::int[] END,
       '{{}}'::int[],
       ts + interval '2 milliseconds'
FROM (SELECT *, (g / {n}) % $8::bigint = 0 AS snap FROM ({rows}) AS q) AS r
"""

BUMP_COUNTERS = """
INSERT INTO ingest_counters AS c (table_name, symbol, exchange, row_count, first_ts, last_ts)
SELECT $1, s, e, n, f, l FROM unnest($2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
    AS u(s, e, n, f, l)
ON CONFLICT (table_name, symbol) DO UPDATE SET
    row_count = c.row_count + EXCLUDED.row_count,
    first_ts = LEAST(c.first_ts, EXCLUDED.first_ts), last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts)
"""

# Table plus indexes plus TOAST, over every partition.
RELATION_BYTES = """
SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
FROM pg_partition_tree($1::regclass) WHERE isleaf
"""


@dataclass(frozen=True)
class Instrument:
    symbol: str
    exchange: str
    base_price: float


@dataclass
class Store:
    """What has been generated so far: days back from `end`, rows per table."""

    url: str
    instruments: tuple[Instrument, ...]
    end: dt.datetime
    day_rows: int
    days: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    generate_s: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def day_window(self, k: int) -> tuple[dt.datetime, dt.datetime]:
        """Day k back from the end (0 = the most recent 24 hours)."""
        return self.end - (k + 1) * DAY, self.end - k * DAY


def _sql(template: str, n: int) -> str:
    return template.format(rows=_ROWS.format(n=n), n=n)


def _counter_args(instruments, t0: dt.datetime, step_s: float, g0: int, g1: int):
    n = len(instruments)
    syms, exchs, counts, firsts, lasts = [], [], [], [], []
    for k, inst in enumerate(instruments):
        first = g0 + (k - g0) % n
        if first > g1:
            continue
        last = g1 - (g1 - k) % n
        syms.append(inst.symbol)
        exchs.append(inst.exchange)
        counts.append((last - first) // n + 1)
        firsts.append(t0 + dt.timedelta(seconds=first * step_s))
        lasts.append(t0 + dt.timedelta(seconds=last * step_s))
    return syms, exchs, counts, firsts, lasts


async def _fill_day(conn: asyncpg.Connection, store: Store, k: int, table: str, rows: int) -> None:
    start, _ = store.day_window(k)
    step_s = DAY.total_seconds() / rows
    insts = store.instruments
    n = len(insts)
    args = ([i.symbol for i in insts], [i.exchange for i in insts], [i.base_price for i in insts])
    if table == "tick_data":
        sql, extra = _sql(INSERT_TICKS, n), ()
    elif table == "quote_data":
        sql, extra = _sql(INSERT_QUOTES, n), ()
    else:
        per_symbol_hour = max(1, rows // n // 24 // SNAPSHOTS_PER_HOUR)
        sql, extra = _sql(INSERT_BOOK, n), (per_symbol_hour,)
    for g0 in range(0, rows, CHUNK_ROWS):
        g1 = min(rows, g0 + CHUNK_ROWS) - 1
        async with conn.transaction():
            await conn.execute(sql, start, step_s, g0, g1, *args, *extra)
            await conn.execute(BUMP_COUNTERS, table, *_counter_args(insts, start, step_s, g0, g1))


async def grow(store: Store, target_rows: int, workers: int = 2) -> float:
    """Add whole days (older than those stored) until at least `target_rows` are stored;
    returns the seconds it took. Partitions are created first, as the collector's maintenance
    task would have."""
    per_table = {t: max(len(store.instruments), round(store.day_rows * MIX[t])) for t in TABLES}
    day_total = sum(per_table.values())
    new_days = max(0, -(-(target_rows - store.total_rows) // day_total))
    if new_days == 0:
        return 0.0
    started = time.perf_counter()
    first_new = store.days
    oldest = store.day_window(first_new + new_days - 1)[0]
    conn = await asyncpg.connect(store.url)
    try:
        days_span = (store.end.date() - oldest.date()).days + 2
        await conn.execute("SELECT rdc_ensure_partitions($1::date, $2)", oldest.date(), days_span)
    finally:
        await conn.close()
    jobs: asyncio.Queue = asyncio.Queue()
    for k in range(first_new, first_new + new_days):
        for table in TABLES:
            jobs.put_nowait((k, table))

    async def work() -> None:
        conn = await asyncpg.connect(store.url, command_timeout=3600)
        try:
            # Bulk load: nothing here needs to wait for the WAL flush of each chunk.
            await conn.execute("SET synchronous_commit = off")
            while not jobs.empty():
                k, table = jobs.get_nowait()
                await _fill_day(conn, store, k, table, per_table[table])
        finally:
            await conn.close()

    await asyncio.gather(*(work() for _ in range(workers)))
    conn = await asyncpg.connect(store.url, command_timeout=3600)
    try:
        # What autovacuum would have done by the time anyone reads this data: statistics for the
        # planner and a visibility map for index-only scans.
        for table in TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")  # noqa: S608 - fixed names
    finally:
        await conn.close()
    store.days += new_days
    for t in TABLES:
        store.rows[t] += per_table[t] * new_days
    elapsed = time.perf_counter() - started
    store.generate_s += elapsed
    return elapsed


async def bytes_per_row(url: str, rows: dict[str, int]) -> dict[str, float]:
    """Bytes on disk (table + indexes + TOAST, all partitions) per stored row of each table."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
        out = {}
        for table, key in (("tick_data", "trade"), ("quote_data", "quote"), ("level2_data", "book_update")):
            size = await conn.fetchval(RELATION_BYTES, table)
            out[key] = round(size / rows[table], 1) if rows[table] else 0.0
        return out
    finally:
        await conn.close()
