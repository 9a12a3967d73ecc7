"""The collector process: one supervisor that starts the named tasks and one shutdown
path that drains them (SIGTERM/SIGINT -> stop reading, flush, log out, exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

from . import markets
from .config import Settings
from .control import ControlStore
from .gaps import GapManager
from .ingest import Ingest, latency_summary
from .live import LivePublisher, MarketState
from .observability import Metrics
from .parsing import COLUMNS
from .session import RithmicSession
from .spool import Spool
from .subscriptions import SubscriptionManager
from .writer import BatchWriter

log = logging.getLogger("collector")


class Collector:
    def __init__(self, settings: Settings, metrics_emit=print, secrets_client=None):
        self.settings = settings
        self._secrets_client = secrets_client
        self.metrics = Metrics(metrics_emit)
        self.stop_event: asyncio.Event | None = None
        self.writer: BatchWriter | None = None
        self.ingest: Ingest | None = None
        self.session: RithmicSession | None = None
        self.subs: SubscriptionManager | None = None
        self.gaps: GapManager | None = None
        self.control: ControlStore | None = None
        self.market: MarketState | None = None
        self.live: LivePublisher | None = None
        self._tasks: list[asyncio.Task] = []
        # Per symbol, the clock instant up to which everything the market sent is stored or inside a
        # recorded gap; the heartbeat publishes it and the next start-up decides restart gaps from it.
        self._recorded_until: dict[str, float] = {}
        self._latency_json: str | None = None  # the heartbeat's latest, kept by the final one at stop

    async def start(self) -> None:
        s = self.settings
        self.stop_event = asyncio.Event()
        self.control = ControlStore(s.database_url.value, timeout=s.db_timeout_s, clock=s.clock)
        spool = Spool(Path(s.spool_dir), s.spool_max_bytes)
        self.writer = BatchWriter(
            s.database_url.value, batch_size=s.batch_size, flush_interval_s=s.flush_interval_ms / 1000,
            max_pending_rows=s.max_pending_rows, db_timeout_s=s.db_timeout_s, spool=spool,
            on_dropped=self._on_dropped, logger=log)
        await self.writer.start()
        with contextlib.suppress(Exception):
            await self.control.maintain()
        self.ingest = Ingest(self.writer, clock=s.clock)
        if s.live_snapshots:  # the console's live view shares the ingest's ring of recent trades
            self.market = self.ingest.live = MarketState(self.ingest.recent_trades)
        self.session = RithmicSession(s, self.ingest, secrets_client=self._secrets_client)
        self.subs = SubscriptionManager(self.session, self.control, s.redis_url.value, consumer=s.collector_id,
                                        clock=s.clock)
        self.gaps = GapManager(self.session, self.ingest, self.writer, self.control, lambda: self.subs.active,
                               s.spool_dir, s.stall_timeout_s, self.metrics)
        self.subs.gaps = self.gaps
        self.session.on_ticker_login = self.gaps.on_login
        self.ingest._on_disconnect = self.gaps.on_disconnect
        self.ingest._on_forced_logout = self.gaps.on_forced_logout
        self.ingest._on_first_trade = self.gaps.on_first_trade
        await self.session.start()
        await self._event("connected", None)
        await self._open_restart_gaps()
        await self.subs.seed(s.symbols)
        stop = self.stop_event
        self._tasks = [
            asyncio.create_task(self.subs.run(stop), name="subscriptions"),
            asyncio.create_task(self.subs.run_schedule(stop), name="rolls"),
            asyncio.create_task(self.gaps.run_backfill(stop), name="backfill"),
            asyncio.create_task(self.gaps.run_watchdog(stop), name="watchdog"),
            asyncio.create_task(self._heartbeat(stop), name="heartbeat"),
            asyncio.create_task(self._maintenance(stop), name="maintenance"),
        ]
        if self.market is not None:
            self.live = LivePublisher(self.market, self.ingest.quotes, s.redis_url.value, s.clock,
                                      last_message_at=lambda: self.ingest.last_message_at)
            self._tasks.append(asyncio.create_task(self.live.run(stop), name="live"))

    async def _open_restart_gaps(self) -> None:
        """Whatever the market did while we were not running (a deploy, a crash, SIGKILL)
        is a gap from the last stored trade to the first trade after start-up.

        Unless it cannot have missed anything: the possible loss runs from the later of the last
        stored trade and the instant a heartbeat last said everything was recorded (`recorded_until`,
        written every 2 s and at a clean stop) to now. When the symbol's market was closed for all of
        that (stopped over the weekend, started before the open), no gap; when any of it was open,
        the gap is exactly as before, from the last stored trade."""
        if len(self.writer.spool):
            # Spooled rows are newer than what PostgreSQL holds; a gap from there would
            # backfill trades the spool still has.
            log.warning("spool not empty at start-up; no restart gaps opened")
            return
        try:
            last = await self.control.last_trades()
            recorded = await self.control.recorded_until()
        except Exception:
            return
        t = self.settings.clock.now()
        gaps = {}
        for r in last:
            symbol, last_ts = r["symbol"], r["last_ts"]
            since = max(last_ts, recorded[symbol]) if symbol in recorded else last_ts
            if markets.lost_nothing(symbol, since.timestamp(), t):
                log.info("restart while the market was closed: nothing missed, no gap", extra={"fields": {
                    "symbol": symbol, "from": since.isoformat(), "to": markets.iso(t)}})
                continue
            gaps[symbol] = (r["exchange"], last_ts, r["held"])
        self.gaps.open_restart_gaps(gaps)

    async def _on_dropped(self, batch, cause):
        await self.gaps.on_dropped(batch, cause)

    async def _event(self, event: str, detail: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.control.session_event(self.settings.collector_id, event, "ticker", detail)

    async def stop(self) -> None:
        """Stop the stream at its source, flush everything received, close the session."""
        self.stop_event.set()
        if self.session is not None and self.session.connected:
            # Unsubscribing first makes the gateway stop sending; its answers arrive after
            # every frame it sent before them, so nothing in flight is left unread.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(
                    *(self.session.unsubscribe(sym, exch, timeout=2.0) for sym, exch in self.subs.active.items()),
                    return_exceptions=True), timeout=3.0)
        # Backfills already under way may finish while the history plant is still up
        # (bounded: SIGTERM must end within 10 s); whatever is left is recorded, not lost.
        backfill = next((t for t in self._tasks if t.get_name() == "backfill"), None)
        if backfill is not None:
            await asyncio.wait({backfill}, timeout=3.0)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.gaps is not None:
            await self.gaps.record_unfinished()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.stop(timeout=2.0), timeout=3.0)
        if self.writer is not None:
            await self.writer.close()
        if self.gaps is not None:
            # Drops recorded on disk while the database was away (the last ones may come from the
            # final flush) go to PostgreSQL now if it answers; otherwise the next start moves them.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.gaps.flush_pending(), timeout=3.0)
        await self._event("disconnected", "shutdown")
        # Everything received is stored (or spooled) and every outage recorded: the next start-up
        # may count from here.
        with contextlib.suppress(Exception):
            await self._record_session_events()
            await self.control.heartbeat(self.settings.collector_id, False, self.ingest.last_message_at, 0.0,
                                         self.writer.pending_rows, self.writer.spool.bytes,
                                         self._latency_json, self._markets(final=True))
        self._write_health(connected=False)
        await self.control.close()
        log.info("collector stopped", extra={"fields": {"rows_written": self.writer.rows_written,
                                                         "spooled_bytes": self.writer.spool.bytes}})

    def _markets(self, final: bool = False) -> dict:
        """Per subscribed symbol: its market (open, closed or halted, and the next open or close,
        from the calendar at the clock's now), its last trade and how far it is recorded.

        `recorded_until` is the instant up to which everything the market sent for the symbol is
        stored (or spooled) or inside a recorded gap: the latest flush the writer has settled, less a
        second of real time for what may still be on its way, but never past the last read on the
        socket (a connection that died unnoticed), nor past the last market message while a market
        is open (a stream that stalled), and not at all while the symbol has an outage not yet
        recorded. At a clean stop (`final`) every outage has just been recorded and every row
        written, so it is the stop itself."""
        clock = self.settings.clock
        t = clock.now()
        active = self.subs.active if self.subs else {}
        unsettled: set[str] = set()
        if final:
            mark = t
        else:
            now = time.monotonic()
            settled = self.writer.settled_at
            mark = None if settled is None else t - clock.clock_seconds(now - settled + 1.0)
            last_read, last_message = self.ingest.last_read_at, self.ingest.last_message_at
            if mark is not None:
                mark = min(mark, last_read.timestamp()) if last_read is not None else None
            if mark is not None and not markets.watch_state(active, t).all_closed:
                mark = min(mark, last_message.timestamp()) if last_message is not None else None
            unsettled = self.gaps.unsettled()
        out = {}
        for symbol in active:
            if mark is not None and symbol not in unsettled and mark > self._recorded_until.get(symbol, 0.0):
                self._recorded_until[symbol] = mark
            last_trade = self.ingest.last_trade(symbol)
            out[symbol] = {**markets.market_json(symbol, t),
                           "last_trade_at": last_trade[0].isoformat() if last_trade else None,
                           "recorded_until": markets.iso(self._recorded_until.get(symbol))}
        return out

    async def _record_session_events(self) -> None:
        while self.gaps.events:
            at, event, detail = self.gaps.events[0]
            await self.control.session_event(self.settings.collector_id, event, "ticker", detail, at)
            self.gaps.events.pop(0)

    def _write_health(self, connected: bool, rate: float = 0.0, markets_doc: dict | None = None) -> None:
        ing = self.ingest
        doc = {"updated_at": time.time(), "connected": connected,
               "last_message_at": ing.last_message_at.isoformat() if ing and ing.last_message_at else None,
               "messages_per_s": rate, "queue_depth": self.writer.pending_rows if self.writer else 0,
               "spool_bytes": self.writer.spool.bytes if self.writer else 0,
               "markets": markets_doc if markets_doc is not None else {}}
        tmp = self.settings.heartbeat_file + ".tmp"
        with contextlib.suppress(OSError):
            with open(tmp, "w") as fh:
                json.dump(doc, fh)
            os.replace(tmp, self.settings.heartbeat_file)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        last_n, last_t = self.ingest.messages, time.monotonic()
        last_rows = dict(self.writer.rows_written)
        last_metrics, metrics_n = time.monotonic(), self.ingest.messages
        # Latency: /health shows each symbol's figures over the trades since the previous
        # heartbeat (a quiet symbol keeps its last ones, with their as_of); the EMF line those
        # since the previous flush.
        health_since: dict = {}
        metrics_since: dict = {}
        latency: dict[str, dict] = {}
        while not stop.is_set():
            await asyncio.sleep(2.0)
            now = time.monotonic()
            rate = (self.ingest.messages - last_n) / (now - last_t)
            last_n, last_t = self.ingest.messages, now
            connected = self.session.connected
            markets_doc = self._markets()
            self._write_health(connected, rate, markets_doc)
            self.metrics.gauge("QueueDepth", self.writer.pending_rows)
            self.metrics.gauge("SpoolBytes", self.writer.spool.bytes)
            self.metrics.gauge("MessagesPerSecond", round(rate, 1))
            for symbol, lat in latency_summary(self.ingest.recent_trades, health_since).items():
                latency[symbol] = {**lat, "as_of": lat["as_of"].isoformat(timespec="microseconds")}
            self._latency_json = json.dumps(latency)
            try:
                await self.control.heartbeat(self.settings.collector_id, connected, self.ingest.last_message_at,
                                             rate, self.writer.pending_rows, self.writer.spool.bytes,
                                             self._latency_json, markets_doc)
                await self._record_session_events()
                await self.gaps.flush_pending()
            except Exception:
                pass  # the database is away; the writer's spool and the health file carry on
            if now - last_metrics >= self.settings.metrics_interval_s:
                for table in COLUMNS:
                    self.metrics.rows(table, self.writer.rows_written[table] - last_rows[table])
                last_rows = dict(self.writer.rows_written)
                self.metrics.count("MessagesReceived", self.ingest.messages - metrics_n)
                self.metrics.gauge("MalformedFramesTotal", self.ingest.malformed)
                # Book updates skipped after an outage until the next snapshot rebuilds the book.
                self.metrics.gauge("BookUpdatesSkippedTotal", self.ingest.book_untrusted_dropped)
                self.metrics.latency(latency_summary(self.ingest.recent_trades, metrics_since))
                self.metrics.flush(self.settings.collector_id)
                last_metrics, metrics_n = now, self.ingest.messages

    async def _maintenance(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=3600)
            except TimeoutError:
                with contextlib.suppress(Exception):
                    await self.control.maintain()


async def run(settings: Settings) -> int:
    collector = Collector(settings)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("collector starting", extra={"fields": settings.public_summary()})
    try:
        await collector.start()
    except BaseException:
        if collector.writer is not None:
            await collector.writer.close()
        raise
    log.info("collector running", extra={"fields": {"subscribed": sorted(collector.subs.active)}})
    await stopping.wait()
    log.info("shutdown requested; draining")
    await collector.stop()
    return 0
