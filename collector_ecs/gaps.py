"""Turns every outage of the market-data stream into a gap record, and backfills the
trades it missed from the history plant once the stream is back.

A gap runs from the last trade stored before the outage to the first trade after it. The
history plant's trades strictly between those two exchange timestamps are backfilled; at
each boundary's own microsecond, trades are counted and matched (`missed_trades`), so a trade
that shares a boundary's microsecond is backfilled when it was missed and never duplicated.

Closed is not broken: an outage is a gap for a symbol only if the symbol's market was open at some
instant between the last moment we were known to be receiving and the moment we were receiving
again (collector_ecs/markets.py). While a market is closed nothing can be missed, so an outage that
lies entirely inside a close (a weekend, the daily halt, a holiday) records no gap and asks for no
backfill; one that overlaps open time is a gap exactly as before, from the last stored trade.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import markets
from .parsing import TICK, trades_from_history
from .rithmic_internals import abort_connection, heartbeat_interval, plant_ready, set_reconnect_floor

STORM_WINDOW_S = 60.0
STORM_FREE_RECONNECTS = 3  # per window, before each further one waits longer
# A connection on which nothing at all arrived (not even the answer to a heartbeat) for twice the
# heartbeat interval plus this many real seconds is dead, open market or not.
DEAD_SLACK_S = 5.0

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
    # Clock instant since when data may have been missed (the last read before the connection was
    # lost): the outage is no gap if the market was closed from then until the next login. None: a
    # gap whatever follows (a restart gap, decided at start-up; a stall, seen only while open).
    since: float | None = None

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
        self._queued: Counter[str] = Counter()  # symbols of the gaps in _backfills
        self._pending_file = Path(spool_dir) / "gaps.jsonl"
        self.stall_timeout_s = stall_timeout_s
        self.metrics = metrics
        self.backfill_max_s = backfill_max_s
        self._cause_hint: str | None = None
        self._reconnects: list[float] = []
        self._current: OpenGap | None = None
        self.clock = ingest.clock
        self._storm_floor = 0.0  # real seconds, after too many reconnects in a minute
        self._closed_floor = 0.0  # real seconds, while every subscribed market is closed
        self._logins = 0
        self._dead_read: dt.datetime | None = None  # the last read of the connection aborted as dead
        # Session events (clock instant, event, detail) for collector_sessions, written by the
        # heartbeat task: the ingest callbacks that produce them are synchronous.
        self.events: list[tuple[dt.datetime, str, str | None]] = []

    # -- events from the ingest path (synchronous) -----------------------------------
    def on_disconnect(self, cause: str) -> None:
        cause = self._cause_hint or cause
        self._cause_hint = None
        self.metrics.count("Reconnects")
        self._bound_reconnect_rate()
        now = self.clock.now_dt()
        self.events.append((now, "disconnected", cause))
        # Until the last read, everything sent had arrived, unless the stream had stalled (the
        # watchdog says so only while a market is open): then the outage is a gap whatever follows.
        since = None if cause == "stall" else (self.ingest.last_read_at or now).timestamp()
        opened = []
        for symbol, exchange in self._active().items():
            if symbol in self.open:
                continue
            start, held = self.ingest.last_trade(symbol) or (now, 0)
            self.open[symbol] = OpenGap(symbol, exchange, start, cause, held_at_start=held, since=since)
            opened.append(symbol)
        self.ingest.mark_outage(opened)
        if opened:
            log.warning("market-data outage", extra={"fields": {"cause": cause, "symbols": opened}})

    def _bound_reconnect_rate(self) -> None:
        t = time.monotonic()
        self._reconnects = [x for x in self._reconnects if t - x < STORM_WINDOW_S] + [t]
        excess = len(self._reconnects) - STORM_FREE_RECONNECTS
        floor = 0.0 if excess <= 0 else min(2.0 ** excess, 60.0)
        self._storm_floor = floor
        self._apply_floor()
        if floor:
            log.warning("frequent reconnects; slowing down", extra={"fields": {
                "reconnects_last_minute": len(self._reconnects), "next_delay_floor_s": floor}})

    def _apply_floor(self) -> None:
        if self.session.client is not None:
            set_reconnect_floor(self.session.client, max(self._storm_floor, self._closed_floor))

    def on_login(self) -> None:
        """The ticker plant logged in (first time, or after a reconnect, before it resubscribes).

        An outage that lay entirely inside each symbol's closed period lost nothing: no gap."""
        now = self.clock.now_dt()
        self.ingest.last_read_at = now  # the dead-connection clock starts again with this session
        self._logins += 1
        if self._logins == 1:
            return  # the start-up login; the service records it
        self.events.append((now, "connected", "reconnect"))
        t = now.timestamp()
        for symbol, gap in list(self.open.items()):
            if gap.since is not None and markets.lost_nothing(symbol, gap.since, t):
                del self.open[symbol]
                self.ingest.awaiting_first_trade.discard(symbol)
                log.info("outage while the market was closed: nothing missed, no gap", extra={"fields": {
                    "symbol": symbol, "cause": gap.cause, "from": markets.iso(gap.since), "to": now.isoformat()}})

    def end_outage(self, symbol: str, at: dt.datetime) -> None:
        """The symbol stopped trading at `at` (expiry) during an outage: its gap ends there."""
        gap = self.open.pop(symbol, None)
        self.ingest.awaiting_first_trade.discard(symbol)
        if gap is not None:
            gap.end = max(at, gap.start)
            self._enqueue(gap)

    def unsettled(self) -> set[str]:
        """Symbols with an outage not yet recorded in the database or on disk (open, or waiting for
        or in the middle of its backfill): what a SIGKILL now would lose track of."""
        out = set(self.open)
        out.update(symbol for symbol, n in self._queued.items() if n)
        if self._current is not None:
            out.add(self._current.symbol)
        return out

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
            self._enqueue(gap)

    def _enqueue(self, gap: OpenGap) -> None:
        self._queued[gap.symbol] += 1
        self._backfills.put_nowait(gap)

    def _dequeue(self, gap: OpenGap) -> OpenGap:
        self._queued[gap.symbol] -= 1
        return gap

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
                gap = self._dequeue(await asyncio.wait_for(self._backfills.get(), timeout=0.5))
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
            pending.append(self._dequeue(self._backfills.get_nowait()))
        t = self.clock.now()
        # An outage still open that so far lies inside each market's close lost nothing (yet).
        pending += [g for g in self.open.values()
                    if g.since is None or not markets.lost_nothing(g.symbol, g.since, t)]
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
        # Only open time can hold trades: a gap over a weekend is as long as its open part.
        too_long = markets.open_seconds(gap.symbol, gap.start.timestamp(), gap.end.timestamp()) > self.backfill_max_s
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
        notices a dead socket after its ~110 s ping timeout) and force a reconnect.

        Silence counts only while at least one subscribed market is open, and only from the later
        of the last message and that market's latest open (a market that just opened may be quiet
        for a moment). While every market is closed, a dead connection is still noticed: nothing at
        all arriving, not even the answers to our heartbeats, for twice the heartbeat interval plus
        DEAD_SLACK_S. Reconnection then waits for the closed-market floor (markets.py).
        """
        # The ingest path only counts messages (it runs for every one); when the count last
        # moved is tracked here, at the watchdog's own pace.
        seen, last_moved = self.ingest.messages, time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if self.ingest.messages != seen:
                seen, last_moved = self.ingest.messages, now
            active = self._active()
            t = self.clock.now()
            state = markets.watch_state(active, t)
            floor = markets.closed_reconnect_floor(state, self.clock, t) if active else 0.0
            if floor != self._closed_floor:
                self._closed_floor = floor
                self._apply_floor()
            if not self.session.connected:
                last_moved = now  # silence while nothing is connected is not a stall
                continue
            if self._dead(t):
                continue
            if not active or state.all_closed:
                last_moved = now  # silence while nothing is subscribed or every market is closed
                continue
            start = last_moved
            if state.opened_at is not None:
                start = max(start, now - self.clock.real_seconds(t - state.opened_at))
            limit = self.stall_timeout_s or 2 * heartbeat_interval(self.session.ticker)
            silent = now - start
            if silent > limit:
                log.warning("market data stalled; reconnecting", extra={"fields": {"silent_s": round(silent, 1)}})
                self._cause_hint = "stall"
                last_moved = now
                abort_connection(self.session.ticker)

    def _dead(self, t: float) -> bool:
        """Abort the ticker connection when nothing has arrived on it for too long; True if aborted."""
        last_read = self.ingest.last_read_at
        ticker = self.session.ticker
        if last_read is None or last_read is self._dead_read or not plant_ready(ticker):
            return False  # mid-login or mid-reconnect (on_login restarts this clock), or aborted already
        limit = 2 * heartbeat_interval(ticker) + DEAD_SLACK_S
        silent = self.clock.real_seconds(t - last_read.timestamp())
        if silent <= limit:
            return False
        log.warning("nothing received, not even heartbeat answers; reconnecting",
                    extra={"fields": {"silent_s": round(silent, 1), "limit_s": limit}})
        self._cause_hint = "dead_connection"
        self._dead_read = last_read
        abort_connection(ticker)
        return True
