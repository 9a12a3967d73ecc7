"""Turns every outage of the market-data stream into a gap record, and backfills the
trades it missed from the history plant once the stream is back.

A gap runs from the last trade stored before the outage to the first trade after it. The
history plant's trades strictly between those two exchange timestamps are backfilled; at
each boundary's own microsecond, trades are counted and matched (`missed_trades`), so a trade
that shares a boundary's microsecond is backfilled when it was missed and never duplicated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .parsing import TICK, trades_from_history
from .rithmic_internals import abort_connection, heartbeat_interval, plant_ready, set_reconnect_floor

STORM_WINDOW_S = 60.0
STORM_FREE_RECONNECTS = 3  # per window, before each further one waits longer

log = logging.getLogger("collector.gaps")
UTC = dt.UTC


@dataclass
class OpenGap:
    symbol: str
    exchange: str
    start: dt.datetime
    cause: str
    gap_id: int | None = None
    end: dt.datetime | None = None
    held_at_start: int = 0  # trades stored with exactly the `start` timestamp
    first_after: tuple | None = None  # the row of the first trade after the outage

    def pending_record(self) -> dict:
        """This gap as a line of the pending file, for when the database cannot take it now."""
        return {"symbol": self.symbol, "exchange": self.exchange, "start": self.start.isoformat(),
                "end": (self.end or self.start).isoformat(), "cause": self.cause, "dropped_rows": 0}


def _same_trade(a: tuple, b: tuple) -> bool:
    # Price and size only: the replay's side is inferred from bid/ask volume, the live one is
    # the aggressor field; matching must not hinge on that inference.
    return a[3] == b[3] and a[4] == b[4]


def missed_trades(history: list[tuple], gap: OpenGap) -> list[tuple]:
    """The trades of `history` (tick_data rows in the replay's order) the live stream missed in `gap`.

    Every trade strictly between the boundary timestamps. At the start's microsecond, the first
    `held_at_start` of the replay's trades are the ones stored before the outage (stream and replay
    list one microsecond's trades in the same order) and the rest were missed. At the end's
    microsecond, those before the first that is the live `first_after` (same price and size) were
    missed; when none matches, none of them is taken: a duplicate would be worse than the gap
    already on record. On a market whose timestamps never repeat this is `start < ts < end`.
    """
    start, end, first_after = gap.start, gap.end, gap.first_after
    inside: list[tuple] = []
    at_end: list[tuple] = []
    seen_at_start = 0
    matched = False
    for row in history:
        ts = row[0]
        if ts < start or ts > end:
            continue
        if ts == start:
            seen_at_start += 1
            if seen_at_start <= gap.held_at_start:
                continue
        if ts == end:
            if not matched:
                if first_after is not None and _same_trade(row, first_after):
                    matched = True
                else:
                    at_end.append(row)
            continue
        inside.append(row)
    return inside + at_end if matched else inside


class GapManager:
    """Owns the gap records, the backfill worker and the stall watchdog."""

    def __init__(self, session, ingest, writer, control, subscriptions_active, spool_dir: str,
                 stall_timeout_s: float | None, metrics, backfill_max_s: float = 3600.0):
        self.session = session
        self.ingest = ingest
        self.writer = writer
        self.control = control
        self._active = subscriptions_active  # callable -> {symbol: exchange}
        self.open: dict[str, OpenGap] = {}
        self._backfills: asyncio.Queue[OpenGap] = asyncio.Queue()
        self._pending_file = Path(spool_dir) / "gaps.jsonl"
        self.stall_timeout_s = stall_timeout_s
        self.metrics = metrics
        self.backfill_max_s = backfill_max_s
        self._cause_hint: str | None = None
        self._reconnects: list[float] = []
        self._current: OpenGap | None = None
        self.clock = ingest.clock

    # -- events from the ingest path (synchronous) -----------------------------------
    def on_disconnect(self, cause: str) -> None:
        cause = self._cause_hint or cause
        self._cause_hint = None
        self.metrics.count("Reconnects")
        self._bound_reconnect_rate()
        now = self.clock.now_dt()
        opened = []
        for symbol, exchange in self._active().items():
            if symbol in self.open:
                continue
            start, held = self.ingest.last_trade(symbol) or (now, 0)
            self.open[symbol] = OpenGap(symbol, exchange, start, cause, held_at_start=held)
            opened.append(symbol)
        self.ingest.mark_outage(opened)
        if opened:
            log.warning("market-data outage", extra={"fields": {"cause": cause, "symbols": opened}})

    def _bound_reconnect_rate(self) -> None:
        t = time.monotonic()
        self._reconnects = [x for x in self._reconnects if t - x < STORM_WINDOW_S] + [t]
        excess = len(self._reconnects) - STORM_FREE_RECONNECTS
        floor = 0.0 if excess <= 0 else min(2.0 ** excess, 60.0)
        if self.session.client is not None:
            set_reconnect_floor(self.session.client, floor)
        if floor:
            log.warning("frequent reconnects; slowing down", extra={"fields": {
                "reconnects_last_minute": len(self._reconnects), "next_delay_floor_s": floor}})

    def open_restart_gaps(self, last: dict[str, tuple[str, dt.datetime, int]]) -> None:
        """{symbol: (exchange, last stored trade's timestamp, trades stored with that timestamp)}."""
        for symbol, (exchange, last_ts, held) in last.items():
            self.open[symbol] = OpenGap(symbol, exchange, last_ts, "restart", held_at_start=held)
        self.ingest.mark_outage(list(last))

    def on_forced_logout(self) -> None:
        self._cause_hint = "forced_logout"
        self.metrics.count("ForcedLogouts")

    def on_first_trade(self, row: tuple) -> None:
        gap = self.open.pop(row[1], None)
        if gap is not None:
            gap.end = row[0]
            gap.first_after = row
            self._backfills.put_nowait(gap)

    def forget(self, symbol: str) -> None:
        self.open.pop(symbol, None)

    # -- spool-full drops --------------------------------------------------------------
    async def on_dropped(self, batch, cause: str) -> None:
        """Record rows the spool could not take, per symbol, durably on disk first."""
        per_symbol: dict[str, list] = {}
        for row in batch.rows:
            ts, symbol, exchange = row[0], row[1], row[2]
            acc = per_symbol.setdefault(symbol, [exchange, ts, ts, 0])
            acc[1], acc[2], acc[3] = min(acc[1], ts), max(acc[2], ts), acc[3] + 1
        records = [{"symbol": s, "exchange": a[0], "start": a[1].isoformat(), "end": a[2].isoformat(),
                    "cause": f"{cause}:{batch.table}", "dropped_rows": a[3]} for s, a in per_symbol.items()]
        await asyncio.to_thread(self._append_pending, records)
        self.metrics.count("RowsDropped", len(batch.rows))
        log.error("spool full: rows dropped and recorded as gaps",
                  extra={"fields": {"table": batch.table, "rows": len(batch.rows)}})

    def _append_pending(self, records: list[dict]) -> None:
        self._pending_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._pending_file, "a") as fh:
            for r in records:
                fh.write(json.dumps({"record_id": str(uuid.uuid4()), **r}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def flush_pending(self) -> None:
        """Move gap records kept on disk (database down when they happened) into PostgreSQL."""
        # Records appended while we flush must not be lost when what is left is written back: the
        # file is first renamed aside (new records start a fresh one), and only this method writes
        # the renamed one. A flush cut short leaves it for the next flush, which finishes it first.
        flushing = self._pending_file.with_suffix(".flushing")
        if not flushing.exists():
            if not self._pending_file.exists():
                return
            os.replace(self._pending_file, flushing)
        lines = flushing.read_text().splitlines()
        done = 0
        try:
            for line in lines:
                r = json.loads(line)
                # Each line's record_id makes the INSERT idempotent: a flush cut short after a commit
                # (cancelled at shutdown, a lost answer) is repeated without a second record.
                record_id = uuid.UUID(r["record_id"]) if r.get("record_id") else None
                await self.control.open_gap(r["symbol"], r["exchange"], dt.datetime.fromisoformat(r["start"]),
                                            dt.datetime.fromisoformat(r["end"]), r["cause"], r["dropped_rows"],
                                            record_id)
                done += 1
        finally:
            if done == len(lines):
                flushing.unlink()
            elif done:
                flushing.write_text("\n".join(lines[done:]) + "\n")
        if self._pending_file.exists():  # appended while this flush ran
            await self.flush_pending()

    # -- tasks -------------------------------------------------------------------------
    async def run_backfill(self, stop: asyncio.Event) -> None:
        """Backfill closed gaps one at a time; after `stop`, finish what is queued (the
        shutdown path bounds how long) rather than drop it."""
        while not (stop.is_set() and self._backfills.empty()):
            try:
                gap = await asyncio.wait_for(self._backfills.get(), timeout=0.5)
            except TimeoutError:
                continue
            self._current = gap
            await self._backfill(gap, stop)
            self._current = None

    async def record_unfinished(self) -> None:
        """At shutdown: every outage not yet recorded becomes a gap record (not backfilled);
        the next start's restart gap covers the same span and backfills it."""
        pending = [self._current] if self._current is not None else []
        while not self._backfills.empty():
            pending.append(self._backfills.get_nowait())
        pending += list(self.open.values())
        for gap in pending:
            try:
                await self.control.open_gap(gap.symbol, gap.exchange, gap.start, gap.end, gap.cause)
            except Exception:
                await asyncio.to_thread(self._append_pending, [gap.pending_record()])
        self.open.clear()
        self._current = None

    async def _backfill(self, gap: OpenGap, stop: asyncio.Event) -> None:
        rows: list[tuple] = []
        backfilled = False
        too_long = (gap.end - gap.start).total_seconds() > self.backfill_max_s
        for attempt in range(0 if too_long else 5):
            if stop.is_set() and attempt > 0:
                break  # shutting down: one attempt, no retries
            for _ in range(60):  # up to 30 s for the history plant to finish reconnecting
                if plant_ready(self.session.history) or stop.is_set():
                    break
                await asyncio.sleep(0.5)
            try:
                ticks = await self.session.historical_trades(
                    gap.symbol, gap.exchange, gap.start, gap.end + dt.timedelta(seconds=1))
                received = self.clock.now_dt()
                rows = missed_trades(trades_from_history(ticks or [], gap.symbol, gap.exchange, received), gap)
                backfilled = True
                break
            except Exception as exc:  # history plant reconnecting, timeouts: try again shortly
                log.warning("backfill attempt failed", extra={"fields": {
                    "symbol": gap.symbol, "attempt": attempt + 1, "error": f"{type(exc).__name__}: {exc}"[:200]}})
                await asyncio.sleep(min(2 ** attempt, 10))
        if rows:
            self.writer.add_many(TICK, rows)
        self.metrics.count("BackfilledTrades", len(rows))
        log.info("gap closed", extra={"fields": {
            "symbol": gap.symbol, "cause": gap.cause, "start": gap.start.isoformat(),
            "end": gap.end.isoformat(), "backfilled_rows": len(rows)}})
        self._current = None  # from here on, this gap's record is this method's to write
        try:
            gap_id = await self.control.open_gap(gap.symbol, gap.exchange, gap.start, gap.end, gap.cause)
            await self.control.close_gap(gap_id, gap.end, backfilled, len(rows))
        except Exception:
            # Database away: keep the record on disk; flush_pending writes it later.
            await asyncio.to_thread(self._append_pending, [gap.pending_record()])

    async def run_watchdog(self, stop: asyncio.Event) -> None:
        """Detect a stalled stream within twice the heartbeat interval (the library only
        notices a dead socket after its ~110 s ping timeout) and force a reconnect."""
        # The ingest path only counts messages (it runs for every one); when the count last
        # moved is tracked here, at the watchdog's own pace.
        seen, last_moved = self.ingest.messages, time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if self.ingest.messages != seen:
                seen, last_moved = self.ingest.messages, now
            if not self._active() or not self.session.connected:
                last_moved = now  # silence while nothing is subscribed or connected is not a stall
                continue
            limit = self.stall_timeout_s or 2 * heartbeat_interval(self.session.ticker)
            silent = now - last_moved
            if silent > limit:
                log.warning("market data stalled; reconnecting", extra={"fields": {"silent_s": round(silent, 1)}})
                self._cause_hint = "stall"
                last_moved = now
                abort_connection(self.session.ticker)
