"""One archive run: every closed UTC day of tick_data, quote_data and level2_data not yet archived is
written to Parquet (one file per table x day x symbol), read back and checked against the rows read
from PostgreSQL, recorded, and then retention drops the partitions that are past their limit and
whose every file checks out against PostgreSQL's rows at that moment.

Safe to kill at any point and to run again: a (table, day) counts as archived only once its
manifest row is written, after all its files were verified; until then a run starts it over,
replacing whatever files a killed run left (each replacement is atomic, see store.py). Only one run
works on a database at a time (an advisory lock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from rdc_common.archive_layout import (
    SCHEMAS,
    TABLES,
    FileEntry,
    Manifest,
    file_key,
    manifest_key,
    schema_mismatch,
)

from ..observability import Metrics
from . import source
from .config import ArchiveSettings
from .parquet import ArchiveDataError, FileStats, read_back, sha256_of, write_file
from .progress import Progress
from .store import Store, StoreError, open_store

log = logging.getLogger("rdc.archive")


class ArchiveError(RuntimeError):
    """The run cannot go on; the message says what happened and what to do."""


class AlreadyRunning(ArchiveError):
    pass


@dataclass
class DayWork:
    table: str
    day: dt.date
    counts: dict[str, int]
    reason: str

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


@dataclass
class RunResult:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    days: int = 0
    dropped: list[tuple[str, dt.date]] = field(default_factory=list)
    blocked: list[tuple[str, dt.date, str]] = field(default_factory=list)
    seconds: float = 0.0
    archive_seconds: float = 0.0  # of which archiving the planned days (no connecting, planning, retention)


def _f(**fields) -> dict:
    return {"fields": fields}


class Archiver:
    def __init__(self, settings: ArchiveSettings, *, store: Store | None = None, metrics: Metrics | None = None,
                 tty: bool | None = None):
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self._tty = tty
        self._readers: list[source.BulkReader] = []
        self._workers = asyncio.Semaphore(max(1, settings.workers))
        self._conn_lock = asyncio.Lock()
        self._progress: Progress | None = None
        self.result = RunResult()

    # -- the run -------------------------------------------------------------------------------------

    async def run(self, *, day: dt.date | None = None, tables: Sequence[str] = TABLES, retention: bool = True,
                  verify: bool = False) -> RunResult:
        started = time.monotonic()
        s = self.settings
        conn = await asyncpg.connect(s.database_url.value, timeout=30)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", source.ADVISORY_LOCK_KEY):
                raise AlreadyRunning("another archive run is working on this database; this one stops without "
                                     "doing anything (the other finishes the work)")
            try:
                await self._check_schemas(conn, tables)
                if self.store is None:
                    self.store = open_store(s.archive_url)
                for path in self.store.remove_leftovers():
                    log.info("removed a temporary file a killed run left", extra=_f(path=path))
                self._readers = [source.BulkReader(s.database_url.value) for _ in range(max(1, s.workers))]
                # Loading the driver and connecting take most of a second: done while the plan is made.
                connecting = asyncio.gather(*(asyncio.to_thread(r.connect) for r in self._readers))
                try:
                    plan = await self._plan(conn, tables, day, verify)
                finally:
                    await connecting
                total = sum(w.rows for w in plan)
                log.info("archive plan", extra=_f(days=len(plan), rows=total, archive=self.store.url,
                                                  closed_through=s.closed_through().isoformat(),
                                                  clock=s.clock.now_dt().isoformat()))
                self._progress = Progress(total, log, tty=self._tty)
                streaming = time.monotonic()
                await self._archive_days(conn, plan)
                self.result.archive_seconds = time.monotonic() - streaming
                if retention:
                    await self._retention(conn, tables)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", source.ADVISORY_LOCK_KEY)
        finally:
            if self._progress is not None:
                self._progress.close()
            for reader in self._readers:
                reader.close()
            if self.store is not None:
                self.store.close()
            await conn.close()
        r = self.result
        r.seconds = time.monotonic() - started
        self.metrics.count("ArchiveFiles", r.files)
        self.metrics.count("ArchiveRows", r.rows)
        self.metrics.count("ArchiveBytes", r.bytes)
        self.metrics.count("RetentionDroppedDays", len(r.dropped))
        self.metrics.count("RetentionBlockedDays", len(r.blocked))
        if r.rows:
            self.metrics.gauge("ArchiveRowsPerSecond", round(r.rows / max(r.seconds, 1e-9)))
        log.info("archive run finished", extra=_f(files=r.files, rows=r.rows, bytes=r.bytes, days=r.days,
                                                  dropped=len(r.dropped), blocked=len(r.blocked),
                                                  seconds=round(r.seconds, 2),
                                                  rows_per_s=round(r.rows / max(r.seconds, 1e-9))))
        return r

    async def _check_schemas(self, conn: asyncpg.Connection, tables: Sequence[str]) -> None:
        problems = []
        for table in tables:
            problems += schema_mismatch(table, await source.catalog_columns(conn, table))
        if problems:
            raise ArchiveError("the tables and the archive schema disagree, so nothing was archived: "
                               + "; ".join(problems))

    # -- what to do ----------------------------------------------------------------------------------

    async def _plan(self, conn: asyncpg.Connection, tables: Sequence[str], day: dt.date | None,
                    verify: bool) -> list[DayWork]:
        s = self.settings
        closed = s.closed_through()
        if day is not None and day > closed:
            raise ArchiveError(f"{day} is not closed yet: it can be archived from {s.closes_at(day).isoformat()} "
                               f"on the clock (now {s.clock.now_dt().isoformat(timespec='seconds')})")
        todo: dict[tuple[str, dt.date], str] = {}
        for table in tables:
            if day is not None:
                row = await conn.fetchrow(source.MANIFEST_OF_DAY, table, day)
                if row is not None and row["pg_dropped_at"] is not None:
                    log.warning("not archiving again: PostgreSQL no longer holds this day (retention moved it "
                                "to the archive)", extra=_f(table=table, day=day.isoformat(),
                                                             dropped_at=row["pg_dropped_at"].isoformat()))
                    continue
                todo[(table, day)] = "asked for"
                continue
            done = {r["day"] for r in await conn.fetch(source.MANIFESTS, table)}
            days = {p.day for p in await source.daily_partitions(conn, table) if p.day <= closed}
            days |= set(await source.default_partition_days(conn, table, closed + dt.timedelta(days=1)))
            for d in sorted(days - done):
                todo[(table, d)] = "closed"
            # A file of a day PostgreSQL still holds that is missing, or not the size that was verified
            # (truncated, replaced), is written again; a manifest too.
            manifests_checked: set[dt.date] = set()
            for r in await conn.fetch(source.FILES_STILL_IN_PG, table):
                if (table, r["day"]) in todo:
                    continue
                size = self.store.size(r["path"])
                if size != r["bytes"]:
                    log.warning("an archived file is missing or damaged; writing it again",
                                extra=_f(table=table, day=r["day"].isoformat(), symbol=r["symbol"],
                                         path=self.store.where(r["path"]), size=size, expected=r["bytes"]))
                    todo[(table, r["day"])] = "damaged file"
                elif r["day"] not in manifests_checked:
                    manifests_checked.add(r["day"])
                    if self.store.size(manifest_key(table, r["day"])) is None:
                        todo[(table, r["day"])] = "missing manifest"
            if verify:
                await self._verify_all(conn, table, todo)
        plan = []
        for (table, d), reason in sorted(todo.items(), key=lambda kv: (kv[0][1], TABLES.index(kv[0][0]))):
            plan.append(await self._day_work(conn, table, d, reason))
        return plan

    async def _day_work(self, conn: asyncpg.Connection, table: str, day: dt.date, reason: str) -> DayWork:
        counts = await source.symbol_counts(conn, table, day)
        archived = {r["symbol"]: r["rows"] for r in await conn.fetch(source.FILES_OF_DAY, table, day)}
        shrunk = [f"{sym}: {n:,} archived, {counts.get(sym, 0):,} in PostgreSQL" for sym, n in archived.items()
                  if counts.get(sym, 0) < n]
        if shrunk:
            raise ArchiveError(f"{table} {day} has fewer rows in PostgreSQL than in the archive ({'; '.join(shrunk)}); "
                               f"rows were deleted after archiving, so the archive is kept as it is: delete its "
                               f"archived_days rows for that day to archive what PostgreSQL holds now")
        return DayWork(table, day, counts, reason)

    async def _verify_all(self, conn: asyncpg.Connection, table: str, todo: dict) -> None:
        """Every archived file of `table` read back in full; a damaged one is written again when PostgreSQL
        still has its day, and reported (the run fails) when it does not."""
        lost = []
        for r in await conn.fetch(source.ALL_FILES, table):
            try:
                with self.store.fetch(r["path"]) as path:
                    rows, checksum, sha, size = read_back(path, table)
                ok = (rows, checksum, sha, size) == (r["rows"], r["checksum"], r["sha256"], r["bytes"])
                why = "differs from what was verified when it was archived"
            except StoreError as exc:
                ok, why = False, str(exc)
            except (ArchiveDataError, OSError, ValueError) as exc:  # pyarrow's errors for damaged files
                ok, why = False, f"{type(exc).__name__}: {exc}"
            if ok:
                continue
            where = self.store.where(r["path"])
            if r["pg_dropped_at"] is None:
                log.warning("an archived file is damaged; writing it again from PostgreSQL",
                            extra=_f(path=where, reason=why[:300]))
                todo[(table, r["day"])] = "damaged file"
            else:
                lost.append(f"{where} ({why[:200]})")
        if lost:
            raise ArchiveError("archived files are damaged and PostgreSQL no longer holds their days: "
                               + "; ".join(lost) + ". Restore them from the bucket's previous object versions "
                               "(the archive bucket is versioned) or from a backup")

    # -- archiving a day -----------------------------------------------------------------------------

    async def _archive_days(self, conn: asyncpg.Connection, plan: list[DayWork]) -> None:
        """The plan, a UTC day at a time, its tables (and their symbols) side by side: each file's read
        from PostgreSQL, compression and check run on a worker thread with its own connection, so
        PostgreSQL's COPY of one file and the hashing and compressing of another share the cores."""
        by_day: dict[dt.date, list[DayWork]] = {}
        for work in plan:
            by_day.setdefault(work.day, []).append(work)
        for day in sorted(by_day):
            await _all(self._archive_day(conn, work) for work in by_day[day])

    async def _db(self, conn: asyncpg.Connection, method: str, *args):
        async with self._conn_lock:  # one control connection, shared by the day's concurrent files
            return await getattr(conn, method)(*args)

    async def _archive_day(self, conn: asyncpg.Connection, work: DayWork) -> None:
        s = self.settings
        table, day = work.table, work.day
        # The day is incomplete from here until its manifest row is written again: retention will not
        # drop it, and a run that follows a crash starts it over.
        await self._db(conn, "execute", source.FORGET_MANIFEST, table, day)
        log.info("archiving a day", extra=_f(table=table, day=day.isoformat(), symbols=len(work.counts),
                                             rows=work.rows, reason=work.reason))
        await _all(self._archive_file(conn, table, day, symbol) for symbol in work.counts)
        files = await self._db(conn, "fetch", source.FILES_OF_DAY, table, day)
        manifest = Manifest(table, day, tuple(self._entry(r) for r in files if r["symbol"] in work.counts),
                            s.clock.now_dt(), SCHEMAS[table])
        key = manifest_key(table, day)
        await asyncio.to_thread(self.store.put_bytes, key, manifest.dumps(), "application/json")
        await self._db(conn, "execute", source.UPSERT_MANIFEST, table, day, len(manifest.files), manifest.rows,
                       manifest.bytes, key, s.clock.now_dt())
        self.result.days += 1

    @staticmethod
    def _entry(r) -> FileEntry:
        return FileEntry(symbol=r["symbol"], path=r["path"], rows=r["rows"], bytes=r["bytes"], sha256=r["sha256"],
                         checksum=r["checksum"], min_timestamp=r["min_ts"], max_timestamp=r["max_ts"],
                         min_id=r["min_id"], max_id=r["max_id"])

    async def _archive_file(self, conn: asyncpg.Connection, table: str, day: dt.date, symbol: str) -> None:
        key = file_key(table, day, symbol)
        sql = await self._db(conn, "fetchval", source.EXPORT_QUERY, *source.export_args(table, day, symbol))
        async with self._workers:
            reader = self._readers.pop()
            try:
                stats = await asyncio.to_thread(self._write_and_check, reader, sql, table, day, symbol, key)
            finally:
                self._readers.append(reader)
        now = self.settings.clock.now_dt()
        await self._db(conn, "execute", source.UPSERT_FILE, table, day, symbol, stats.rows, stats.bytes,
                       stats.checksum, stats.sha256, key, stats.min_timestamp, stats.max_timestamp, stats.min_id,
                       stats.max_id, now)
        r = self.result
        r.files, r.rows, r.bytes = r.files + 1, r.rows + stats.rows, r.bytes + stats.bytes
        log.info("archived", extra=_f(table=table, day=day.isoformat(), symbol=symbol, rows=stats.rows,
                                      bytes=stats.bytes, path=self.store.where(key),
                                      bytes_per_row=round(stats.bytes / stats.rows, 2) if stats.rows else None))

    def _write_and_check(self, reader: source.BulkReader, sql: str, table: str, day: dt.date, symbol: str,
                         key: str) -> FileStats:
        """On a worker thread: PostgreSQL's rows into a staged file, the file into the archive, and the
        archived file read back, as any reader would, and held to the rows PostgreSQL gave."""
        staged = self.store.staging(key)
        progress = self._progress
        if progress is not None:
            progress.describe(f"{table} {day} {symbol}")
        try:
            stats = write_file(reader.batches(sql), table, staged,
                               metadata={"rdc.date": day.isoformat(), "rdc.symbol": symbol},
                               on_rows=progress.add if progress is not None else None)
        except BaseException:
            self.store.discard(staged)
            raise
        self.store.commit(staged, key)
        with self.store.fetch(key) as path:
            rows, checksum, sha, size = read_back(path, table)
        if (rows, checksum, sha, size) != (stats.rows, stats.checksum, stats.sha256, stats.bytes):
            raise ArchiveError(f"{self.store.where(key)} read back differently from the {stats.rows:,} rows written "
                               f"({rows:,} rows, checksum {'equal' if checksum == stats.checksum else 'different'}, "
                               f"{size:,} of {stats.bytes:,} bytes); it is not recorded as archived and the next "
                               f"run writes it again")
        return stats

    # -- retention -----------------------------------------------------------------------------------

    async def _retention(self, conn: asyncpg.Connection, tables: Sequence[str]) -> None:
        today = self.settings.clock.today()
        for table in tables:
            limit = self.settings.retention_days[table]
            if limit <= 0:
                continue
            cutoff = today - dt.timedelta(days=limit)
            partitions = {p.day: p for p in await source.daily_partitions(conn, table) if p.day < cutoff}
            days = set(partitions) | set(await source.default_partition_days(conn, table, cutoff))
            for d in sorted(days):
                await self._retire(conn, table, d, partitions.get(d), limit)

    def _block(self, table: str, day: dt.date, why: str) -> None:
        log.warning("retention is NOT dropping a day: " + why, extra=_f(table=table, day=day.isoformat()))
        self.result.blocked.append((table, day, why))

    def _files_intact(self, files) -> list[str]:
        """Sentences for every file of the day that is not, byte for byte, the file that was verified."""
        bad = []
        for r in files:
            try:
                with self.store.fetch(r["path"]) as path:
                    sha, size = sha256_of(path)
            except StoreError as exc:
                bad.append(str(exc))
                continue
            if (sha, size) != (r["sha256"], r["bytes"]):
                bad.append(f"{self.store.where(r['path'])} is not the file that was verified ({size:,} bytes, "
                           f"{r['bytes']:,} expected)")
        return bad

    async def _retire(self, conn: asyncpg.Connection, table: str, day: dt.date, partition, limit: int) -> None:
        for attempt in (1, 2):
            manifest = await conn.fetchrow(source.MANIFEST_OF_DAY, table, day)
            if manifest is None:
                self._block(table, day, f"it is past the {limit}-day limit but not archived yet (it stays in "
                                        f"PostgreSQL until a run archives and verifies it)")
                return
            if manifest["pg_dropped_at"] is not None:
                # Rows written for a day whose archive is already its only copy (a very late backfill):
                # merging them would rewrite verified files, so they stay where they are, said loudly.
                self._block(table, day, "rows arrived in PostgreSQL for a day already moved to the archive; they "
                                        "stay in PostgreSQL (the archive's files of that day are left as verified)")
                return
            files = await conn.fetch(source.FILES_OF_DAY, table, day)
            damaged = self._files_intact(files)
            if damaged:
                if attempt == 2:
                    raise ArchiveError(f"{table} {day} was archived again but its files still do not check out: "
                                       + "; ".join(damaged))
                log.warning("an archived file is damaged; writing the day again before dropping it",
                            extra=_f(table=table, day=day.isoformat(), problems="; ".join(damaged)[:500]))
                await self._redo(conn, table, day, "damaged file")
                continue
            archived = {r["symbol"]: r["rows"] for r in files if r["rows"]}
            changed = await self._drop_if_unchanged(conn, table, day, partition, archived)
            if changed is None:
                return
            if attempt == 2:
                self._block(table, day, f"its rows keep changing ({changed}); retried next run")
                return
            log.warning("rows arrived after the day was archived; archiving it again before dropping it",
                        extra=_f(table=table, day=day.isoformat(), difference=changed))
            await self._redo(conn, table, day, "changed since archived")

    async def _redo(self, conn: asyncpg.Connection, table: str, day: dt.date, reason: str) -> None:
        work = await self._day_work(conn, table, day, reason)
        if self._progress is not None:
            self._progress.grow(work.rows)
        await self._archive_day(conn, work)

    async def _drop_if_unchanged(self, conn: asyncpg.Connection, table: str, day: dt.date, partition,
                                 archived: dict[str, int]) -> str | None:
        """Drop the day's partition and delete its rows from the default partition, if PostgreSQL's rows
        per symbol still equal the archived ones; returns None when done (or blocked), else what differs."""
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('lock_timeout', $1, true)",
                                   f"{int(self.settings.lock_timeout_s * 1000)}ms")
                # Writers of this day wait from here to the commit, so nothing lands between the count and
                # the drop.
                if partition is not None:
                    await source.lock_share(conn, partition.name)
                await source.lock_share(conn, f"{table}_default")
                counts = await source.symbol_counts(conn, table, day)
                if counts != archived:
                    diff = sorted(f"{sym}: {archived.get(sym, 0):,} archived, {counts.get(sym, 0):,} now"
                                  for sym in set(counts) | set(archived) if counts.get(sym) != archived.get(sym))
                    raise _Changed("; ".join(diff))
                if partition is not None:
                    await source.drop_table(conn, partition.name)
                deleted = await source.delete_default_rows(conn, table, day)
                await conn.execute(source.MARK_DROPPED, table, day, self.settings.clock.now_dt())
        except _Changed as changed:
            return str(changed)
        except asyncpg.exceptions.LockNotAvailableError:
            self._block(table, day, f"its partition was busy for {self.settings.lock_timeout_s:g} s; retried next run")
            return None
        rows = sum(archived.values())
        log.info("retention dropped a day from PostgreSQL; the archive now holds its only copy",
                 extra=_f(table=table, day=day.isoformat(), rows=rows, partition=partition.name if partition else None,
                          default_partition_rows=int(deleted.split()[-1])))
        self.result.dropped.append((table, day))


class _Changed(Exception):
    pass


async def _all(coroutines) -> None:
    """Run side by side and wait for every one (a worker thread cannot be cancelled half way); then
    raise the first failure."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
