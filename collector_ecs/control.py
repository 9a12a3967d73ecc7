"""The collector's bookkeeping in PostgreSQL: subscriptions, session events, gaps,
heartbeat, partitions. Small, infrequent statements on a small pool; every call has a
timeout and raises on failure so the caller decides what to retry."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import asyncpg

from rdc_common.clock import Clock, LiveClock

_UPSERT_DESIRED = (
    "INSERT INTO subscriptions (symbol, exchange, desired, status, kind, requested_at, status_since) "
    "VALUES ($1, $2, true, 'pending', $3, $4, $4) "
    "ON CONFLICT (symbol) DO UPDATE SET exchange = EXCLUDED.exchange, desired = true, kind = EXCLUDED.kind, "
    "product = NULL, status = CASE WHEN subscriptions.status = 'active' THEN 'active' ELSE 'pending' END"
)
# A followed product's new front month. A row already desired is left as it is (an explicit
# subscription stays explicit: product NULL, never rolled); one not desired becomes the product's.
_WANT_FOR_PRODUCT = (
    "INSERT INTO subscriptions (symbol, exchange, desired, status, kind, product, requested_at, status_since) "
    "VALUES ($1, $2, true, 'pending', 'contract', $3, $4, $4) "
    "ON CONFLICT (symbol) DO UPDATE SET exchange = EXCLUDED.exchange, desired = true, status = 'pending', "
    "reason = NULL, product = EXCLUDED.product, requested_at = $4, status_since = $4 "
    "WHERE NOT subscriptions.desired"
)
# A product no longer followed: the contracts it brought in go with it (an expired one stays expired).
_UNFOLLOW = ("UPDATE subscriptions SET desired = false, status_since = $2 "
             "WHERE kind = 'contract' AND product = $1 AND desired AND status <> 'expired'")
_UNWANT = "UPDATE subscriptions SET desired = false WHERE symbol = $1 AND desired"
_RECORD_ROLL = (
    "INSERT INTO rolls (product, exchange, from_symbol, to_symbol, at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (product, to_symbol) DO NOTHING RETURNING id"
)
_ROLLED = "SELECT to_symbol FROM rolls WHERE product = $1"
# Per symbol, the latest instant any collector's heartbeat says everything up to was stored or is
# inside a recorded gap (see Collector._heartbeat): where a restart's possible loss begins.
_RECORDED_UNTIL = (
    "SELECT m.key AS symbol, max((m.value ->> 'recorded_until')::timestamptz) AS until "
    "FROM collector_heartbeat h CROSS JOIN LATERAL jsonb_each(h.markets) AS m(key, value) "
    "WHERE h.markets IS NOT NULL GROUP BY m.key"
)
_SET_STATUS = (
    "UPDATE subscriptions SET status = $2, reason = $3, status_since = $4 "
    "WHERE symbol = $1 AND (status IS DISTINCT FROM $2 OR reason IS DISTINCT FROM $3)"
)
_DESIRED = ("SELECT symbol, exchange, desired, status, kind, product FROM subscriptions "
            "ORDER BY requested_at, symbol")
_SESSION_EVENT = ("INSERT INTO collector_sessions (collector_id, event, plant, detail, at) "
                  "VALUES ($1, $2, $3, $4, $5)")
_OPEN_GAP = ("INSERT INTO gaps (symbol, exchange, gap_start, gap_end, cause, dropped_rows, record_id) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (record_id) DO NOTHING RETURNING id")
_CLOSE_GAP = ("UPDATE gaps SET gap_end = $2, backfilled = $3, backfilled_rows = $4 WHERE id = $1")
_HEARTBEAT = (
    "INSERT INTO collector_heartbeat (collector_id, connected, last_message_at, messages_per_s, queue_depth, "
    "spool_bytes, latency, updated_at, markets) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb) "
    "ON CONFLICT (collector_id) DO UPDATE SET "
    "connected = EXCLUDED.connected, last_message_at = EXCLUDED.last_message_at, "
    "messages_per_s = EXCLUDED.messages_per_s, queue_depth = EXCLUDED.queue_depth, "
    "spool_bytes = EXCLUDED.spool_bytes, latency = EXCLUDED.latency, updated_at = EXCLUDED.updated_at, "
    "markets = EXCLUDED.markets"
)
# The last stored trade's timestamp per subscribed symbol, and how many trades share it (a
# restart gap's backfill skips that many of the replay's trades at that microsecond).
_LAST_TRADES = (
    "SELECT s.symbol, s.exchange, c.last_ts, (SELECT count(*) FROM tick_data t"
    " WHERE t.symbol = s.symbol AND t.\"timestamp\" = c.last_ts) AS held"
    " FROM subscriptions s JOIN ingest_counters c ON c.table_name = 'tick_data' AND c.symbol = s.symbol"
    " WHERE s.desired AND s.kind = 'contract' AND s.status <> 'expired' AND c.last_ts IS NOT NULL"
)
_PARTITIONS = "SELECT rdc_ensure_partitions($1::date, $2)"
_PRUNE_BATCHES = "DELETE FROM ingest_batches WHERE committed_at < now() - make_interval(days => $1)"
_PRUNE_MINUTES = "DELETE FROM ingest_minute_counters WHERE minute < now() - make_interval(days => $1)"


async def bounded(coro, timeout: float):
    """Await `coro` for at most `timeout` seconds, then give up on it without waiting for
    its cancellation (which, on a hung server, would wait forever)."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise TimeoutError(f"no answer within {timeout}s")
    return task.result()


class ControlStore:
    """Times it writes (status changes, heartbeats) and the partitions it makes follow `clock`
    (rdc_common.clock), the market's time, so they line up with the recorded data's timestamps."""

    def __init__(self, dsn: str, timeout: float, clock: Clock | None = None):
        self._dsn = dsn
        self.timeout = timeout
        self.clock = clock or LiveClock()
        self._pool: asyncpg.Pool | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=2, timeout=self.timeout,
                                                   command_timeout=self.timeout)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            try:
                await bounded(self._pool.close(), 2.0)
            except Exception:  # hung or dead server
                self._pool.terminate()
            self._pool = None

    async def _execute(self, sql: str, *args) -> str:
        return await bounded(self._run("execute", sql, *args), self.timeout + 1)

    async def _fetch(self, sql: str, *args):
        return await bounded(self._run("fetch", sql, *args), self.timeout + 1)

    async def _fetchval(self, sql: str, *args):
        return await bounded(self._run("fetchval", sql, *args), self.timeout + 1)

    async def _run(self, method: str, sql: str, *args):
        pool = await self._get_pool()
        return await getattr(pool, method)(sql, *args, timeout=self.timeout)

    async def want(self, symbol: str, exchange: str, kind: str = "contract") -> None:
        """SYMBOLS at start-up: a contract (explicit, never rolled) or a product (followed)."""
        await self._execute(_UPSERT_DESIRED, symbol, exchange, kind, self.clock.now_dt())

    async def want_for_product(self, symbol: str, exchange: str, product: str) -> None:
        await self._execute(_WANT_FOR_PRODUCT, symbol, exchange, product, self.clock.now_dt())

    async def unfollow(self, product: str) -> None:
        await self._execute(_UNFOLLOW, product, self.clock.now_dt())

    async def unwant(self, symbol: str) -> None:
        await self._execute(_UNWANT, symbol)

    async def record_roll(self, product: str, exchange: str, from_symbol: str | None, to_symbol: str,
                          at: dt.datetime) -> bool:
        """True when this roll is new; a roll already recorded (a restart) changes nothing."""
        return await self._fetchval(_RECORD_ROLL, product, exchange, from_symbol, to_symbol, at,
                                    self.clock.now_dt()) is not None

    async def rolled(self, product: str) -> set[str]:
        return {r["to_symbol"] for r in await self._fetch(_ROLLED, product)}

    async def recorded_until(self) -> dict[str, dt.datetime]:
        return {r["symbol"]: r["until"] for r in await self._fetch(_RECORDED_UNTIL) if r["until"] is not None}

    async def set_status(self, symbol: str, status: str, reason: str | None = None) -> None:
        await self._execute(_SET_STATUS, symbol, status, reason, self.clock.now_dt())

    async def desired_set(self) -> list[asyncpg.Record]:
        return await self._fetch(_DESIRED)

    async def session_event(self, collector_id: str, event: str, plant: str | None, detail: str | None,
                            at: dt.datetime | None = None) -> None:
        await self._execute(_SESSION_EVENT, collector_id, event, plant, detail, at or self.clock.now_dt())

    async def open_gap(self, symbol: str, exchange: str, start: dt.datetime, end: dt.datetime | None,
                       cause: str, dropped_rows: int = 0, record_id: uuid.UUID | None = None) -> int | None:
        """The new gap's id; None when `record_id` was recorded before (nothing inserted)."""
        return await self._fetchval(_OPEN_GAP, symbol, exchange, start, end, cause, dropped_rows, record_id)

    async def close_gap(self, gap_id: int, end: dt.datetime, backfilled: bool, rows: int) -> None:
        await self._execute(_CLOSE_GAP, gap_id, end, backfilled, rows)

    async def heartbeat(self, collector_id: str, connected: bool, last_message_at, rate: float,
                        queue_depth: int, spool_bytes: int, latency: str | None = None,
                        markets: dict | None = None) -> None:
        """`latency`: the per-symbol exchange-to-collector latency summary as JSON text; `markets`:
        per symbol, its market status and how far it is recorded (Collector._markets)."""
        await self._execute(_HEARTBEAT, collector_id, connected, last_message_at, rate, queue_depth, spool_bytes,
                            latency, self.clock.now_dt(), json.dumps(markets) if markets is not None else None)

    async def last_trades(self) -> list[asyncpg.Record]:
        return await self._fetch(_LAST_TRADES)

    async def maintain(self, days_ahead: int = 7, keep_batch_ids_days: int = 7) -> None:
        # From the day before: rows of a trade date that began the evening before land in their own day.
        await self._fetchval(_PARTITIONS, self.clock.today() - dt.timedelta(days=1), days_ahead + 1)
        await self._execute(_PRUNE_BATCHES, keep_batch_ids_days)
        await self._execute(_PRUNE_MINUTES, 2)
