"""Writes row batches into PostgreSQL with COPY, each batch exactly once.

A batch carries a UUID that is committed in the same transaction as its rows, so a
batch retried after an ambiguous failure (the commit went through, the answer did not)
is recognised and skipped instead of written twice. The same transaction maintains
`ingest_counters`, which is what lets /api/stats answer in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from .parsing import COLUMNS

# Claim the batch id and bump both counter tables in one statement (one round trip, which
# matters: the writer shares its event loop with the socket reader, so every round trip
# waits behind a read). The counters move only when the claim succeeds; a batch seen
# before returns no row and the caller skips its COPY.
_CLAIM_AND_COUNT = (
    "WITH claim AS ("
    " INSERT INTO ingest_batches (batch_id, table_name, row_count) VALUES ($1, $2, $3)"
    " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id), "
    "totals AS ("
    " INSERT INTO ingest_counters AS c (table_name, symbol, exchange, row_count, first_ts, last_ts)"
    " SELECT $2, s, e, n, f, l FROM unnest($4::text[], $5::text[], $6::bigint[],"
    " $7::timestamptz[], $8::timestamptz[]) AS u(s, e, n, f, l) WHERE EXISTS (SELECT 1 FROM claim)"
    " ON CONFLICT (table_name, symbol) DO UPDATE SET"
    " row_count = c.row_count + EXCLUDED.row_count, exchange = EXCLUDED.exchange,"
    " first_ts = LEAST(c.first_ts, EXCLUDED.first_ts), last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts)), "
    "minutes AS ("
    " INSERT INTO ingest_minute_counters AS c (table_name, symbol, minute, row_count)"
    " SELECT $2, s, m, n FROM unnest($9::text[], $10::timestamptz[], $11::bigint[]) AS u(s, m, n)"
    " WHERE EXISTS (SELECT 1 FROM claim)"
    " ON CONFLICT (table_name, minute, symbol) DO UPDATE SET row_count = c.row_count + EXCLUDED.row_count) "
    "SELECT batch_id FROM claim"
)


@dataclass
class Batch:
    """Rows for one table, with the identity that makes writing them idempotent."""

    table: str
    rows: list[tuple]
    batch_id: uuid.UUID = field(default_factory=uuid.uuid4)


def counter_deltas(rows: Sequence[tuple]) -> tuple[list, list, list, list, list]:
    """Per-symbol (symbol, exchange, count, first ts, last ts) of rows laid out as in parsing.COLUMNS."""
    acc: dict[str, list] = {}
    for row in rows:
        ts, symbol = row[0], row[1]
        a = acc.get(symbol)
        if a is None:
            acc[symbol] = [row[2], 1, ts, ts]
        else:
            a[1] += 1
            if ts < a[2]:
                a[2] = ts
            elif ts > a[3]:
                a[3] = ts
    symbols = list(acc)
    return (symbols, [acc[s][0] for s in symbols], [acc[s][1] for s in symbols],
            [acc[s][2] for s in symbols], [acc[s][3] for s in symbols])


_MINUTE = dt.timedelta(minutes=1)


def minute_deltas(rows: Sequence[tuple]) -> tuple[list, list, list]:
    """Per (symbol, minute) row counts, for the API's exact recent-activity figures.

    Rows of a symbol arrive in time order, so the minute is recomputed only when a row
    leaves the current one (this runs for every stored row).
    """
    acc: dict[tuple, int] = {}
    current: dict[str, tuple] = {}
    for row in rows:
        ts, symbol = row[0], row[1]
        cur = current.get(symbol)
        if cur is None or not cur[0] <= ts < cur[1]:
            start = ts.replace(second=0, microsecond=0)
            cur = current[symbol] = (start, start + _MINUTE, (symbol, start))
        key = cur[2]
        acc[key] = acc.get(key, 0) + 1
    keys = list(acc)
    return [k[0] for k in keys], [k[1] for k in keys], [acc[k] for k in keys]


async def write_batch(conn: asyncpg.Connection, table: str, rows: list[tuple],
                      batch_id: uuid.UUID | None = None, timeout: float | None = None) -> bool:
    """COPY `rows` into `table` in one transaction; False when this batch id was committed before."""
    columns = COLUMNS[table]  # KeyError for an unknown table: a programming error
    if rows and len(rows[0]) < len(columns):
        # A batch spooled before the table gained columns: they were added last and are nullable.
        columns = columns[: len(rows[0])]
    batch_id = batch_id or uuid.uuid4()
    async with conn.transaction():
        claimed = await conn.fetchval(_CLAIM_AND_COUNT, batch_id, table, len(rows), *counter_deltas(rows),
                                      *minute_deltas(rows), timeout=timeout)
        if claimed is None:
            return False
        await conn.copy_records_to_table(table, records=rows, columns=columns, timeout=timeout)
    return True


class BatchWriter:
    """Owns the path from parsed rows to committed rows: per-table buffers, one writer
    task, the spool when PostgreSQL fails, and bounded memory (callers wait when full).
    """

    def __init__(self, dsn: str, *, batch_size: int, flush_interval_s: float, max_pending_rows: int,
                 db_timeout_s: float, spool, on_dropped=None, logger=None, on_committed=None):
        self._dsn = dsn
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        self.db_timeout_s = db_timeout_s
        self.spool = spool
        self._on_dropped = on_dropped  # async callback(batch, cause) when the spool is full
        # Optional sync callback(batch, commit_time) after each batch commits (commit_time from
        # time.time()); the benchmarks measure freshness with it. Public: settable after start().
        self.on_committed = on_committed
        self._log = logger
        self._buffers: dict[str, list] = {t: [] for t in COLUMNS}
        self._inflight = 0
        self.rows_written: dict[str, int] = dict.fromkeys(COLUMNS, 0)
        self.rows_dropped = 0
        self.batches_skipped = 0
        self.last_batch_ms = 0.0
        # time.monotonic() of the latest flush whose rows are all committed or spooled: every row
        # handed over before it is durable (the heartbeat's recorded_until is built on it).
        self.settled_at: float | None = None
        self._conn: asyncpg.Connection | None = None
        self._kick: asyncio.Event | None = None
        self._space: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # -- producer side (hot path, synchronous) ------------------------------------------
    def appender(self, table: str):
        """The bound `append` of a table's buffer: the cheapest way to hand over a row (one
        C call per row). Callers check `full` every so often, which also starts a flush
        when a buffer holds a whole batch."""
        return self._buffers[table].append

    def add_many(self, table: str, rows: list[tuple]) -> None:
        self._buffers[table].extend(rows)
        self._kick.set()

    @property
    def pending_rows(self) -> int:
        """Rows received and not yet committed or spooled."""
        return self._inflight + sum(len(b) for b in self._buffers.values())

    @property
    def full(self) -> bool:
        if any(len(b) >= self.batch_size for b in self._buffers.values()):
            self._kick.set()
        return self.pending_rows >= self.max_pending_rows

    async def wait_for_space(self) -> None:
        while self.full:
            self._space.clear()
            await self._space.wait()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._kick = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.spool.open()
        try:
            await self._connect()
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            # Start anyway: rows go to the spool until the database answers.
            self._warn("database unavailable at start-up; spooling", error=str(exc))
        await self.drain_spool()
        self._task = asyncio.create_task(self._run(), name="batch-writer")

    async def close(self) -> None:
        """Flush every buffered row (to PostgreSQL, or the spool) and stop."""
        self._closing = True
        self._kick.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            await self._close_conn()

    async def drain_spool(self, timeout: float = 30.0) -> None:
        """Before the writer task starts: write what a previous run left in the spool."""
        if len(self.spool) and self._conn is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._replay_spool(deadline=None, yield_to_live=False), timeout)

    # -- writer task --------------------------------------------------------------------
    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(self._dsn, timeout=self.db_timeout_s,
                                           command_timeout=self.db_timeout_s)

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.close(timeout=1.0)  # asyncpg drops the socket itself when this expires
        except Exception:  # a dead server: drop the socket without ceremony
            conn.terminate()

    def _cut_batches(self) -> list[Batch]:
        batches = []
        for table, buf in self._buffers.items():
            while buf:
                rows = buf[: self.batch_size]
                del buf[: self.batch_size]
                batches.append(Batch(table, rows))
        return batches

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=self.flush_interval_s)
            except TimeoutError:
                pass
            self._kick.clear()
            closing = self._closing
            cut_at = time.monotonic()
            batches = self._cut_batches()
            self._inflight += sum(len(b.rows) for b in batches)
            for batch in batches:
                await self._deliver(batch)
                self._inflight -= len(batch.rows)
                self._space.set()  # a waiting reader re-checks `full` itself
            self.settled_at = cut_at
            if len(self.spool):
                await self._replay_spool(deadline=2.0 if closing else None)
            if closing and not any(self._buffers.values()):
                return

    async def _write(self, batch: Batch) -> bool:
        if self._conn is None:
            await self._connect()
        t0 = time.perf_counter()
        conn = self._conn
        task = asyncio.ensure_future(write_batch(conn, batch.table, batch.rows, batch.batch_id))
        finished, _ = await asyncio.wait({task}, timeout=self.db_timeout_s)
        if not finished:
            # A hung server. Cancelling would run the transaction's ROLLBACK on the same
            # hung socket and wait forever; dropping the socket fails every pending call.
            conn.terminate()
            self._conn = None
            await asyncio.wait({task}, timeout=1.0)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the failure is the timeout we raise
            raise TimeoutError(f"no answer from PostgreSQL within {self.db_timeout_s}s")
        done = task.result()
        self.last_batch_ms = (time.perf_counter() - t0) * 1000
        if done:
            self.rows_written[batch.table] += len(batch.rows)
            if self.on_committed is not None:
                self.on_committed(batch, time.time())
        else:
            self.batches_skipped += 1
        return done

    async def _deliver(self, batch: Batch) -> None:
        if not len(self.spool):  # order: nothing may overtake rows already spooled
            try:
                await self._write(batch)
                return
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._warn("batch write failed; spooling", table=batch.table, rows=len(batch.rows),
                           error=f"{type(exc).__name__}: {exc}"[:300])
                await self._close_conn()
        stored = await asyncio.to_thread(self.spool.put, batch)
        if not stored:
            self.rows_dropped += len(batch.rows)
            if self._on_dropped is not None:
                await self._on_dropped(batch, "spool_full")

    async def _replay_spool(self, deadline: float | None, yield_to_live: bool = True) -> None:
        """Write spooled batches oldest first; stop at the first failure and retry later."""
        started = time.monotonic()
        while (item := await asyncio.to_thread(self.spool.peek)) is not None:
            path, batch = item
            try:
                await self._write(batch)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._close_conn()
                if not self._closing:
                    await asyncio.sleep(min(1.0, self.flush_interval_s * 5))
                return
            self.spool.remove(path)
            if deadline is not None and time.monotonic() - started > deadline:
                return
            if yield_to_live and any(len(b) >= self.batch_size for b in self._buffers.values()):
                return  # let live rows through between spooled batches

    def _warn(self, msg: str, **fields) -> None:
        if self._log is not None:
            self._log.warning(msg, extra={"fields": fields})
