"""Keeps the session's subscriptions equal to the desired set.

The API records each request in PostgreSQL (durable) and adds a command to a Redis
Stream (prompt). We read the stream through a consumer group and acknowledge a command
only after its outcome is recorded, and we reconcile with the table at start-up and
periodically, so a command sent while we or Redis were down is not lost.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from rdc_common.products import SymbolError, infer_exchange, normalize_exchange, normalize_symbol

from .session import SubscriptionRefused

log = logging.getLogger("collector.subscriptions")

STREAM = "rdc:commands"
GROUP = "collector"


class SubscriptionManager:
    def __init__(self, session, control, redis_url: str, consumer: str, gaps=None,
                 reconcile_interval_s: float = 10.0):
        self.session = session
        self.control = control
        self.redis_url = redis_url
        self.consumer = consumer
        self.gaps = gaps
        self.reconcile_interval_s = reconcile_interval_s
        self.active: dict[str, str] = {}  # symbol -> exchange, what the session is subscribed to
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()  # one change at a time: stream and reconciler share the session
        self._redis: aioredis.Redis | None = None

    # -- applying one change -----------------------------------------------------------
    async def apply(self, op: str, symbol: str, exchange: str) -> tuple[str, str | None]:
        """Subscribe or unsubscribe; returns the (status, reason) recorded for the symbol."""
        async with self._lock:
            if op == "subscribe":
                if symbol in self.active:
                    status, reason = "active", None
                else:
                    try:
                        await self.session.subscribe(symbol, exchange)
                        self.active[symbol] = exchange
                        self._failed.pop(symbol, None)
                        status, reason = "active", None
                        log.info("subscribed", extra={"fields": {"symbol": symbol, "exchange": exchange}})
                    except SubscriptionRefused as exc:
                        status, reason = "failed", str(exc)
                        self._failed[symbol] = reason
                        log.warning("subscription refused",
                                    extra={"fields": {"symbol": symbol, "exchange": exchange, "reason": reason}})
                    except TimeoutError:
                        status, reason = "failed", "the gateway did not answer the subscription request"
            elif op == "unsubscribe":
                if symbol in self.active:
                    await self.session.unsubscribe(symbol, self.active.pop(symbol))
                    if self.gaps is not None:
                        self.gaps.forget(symbol)
                status, reason = "unsubscribed", None
            else:
                raise ValueError(op)
            await self.control.set_status(symbol, status, reason)
            return status, reason

    async def seed(self, specs) -> None:
        """Subscribe the configured SYMBOLS (products resolved to their front month)."""
        for spec in specs:
            try:
                symbol = await self.session.resolve(spec)
            except Exception as exc:
                log.error("cannot resolve front month", extra={"fields": {"symbol": spec.symbol, "error": str(exc)}})
                continue
            await self.control.want(symbol, spec.exchange)
        await self.reconcile()

    async def reconcile(self) -> None:
        for row in await self.control.desired_set():
            symbol, exchange, desired, status = row["symbol"], row["exchange"], row["desired"], row["status"]
            if desired and symbol not in self.active and status != "failed":
                await self.apply("subscribe", symbol, exchange)
            elif desired and symbol in self.active and status != "active":
                await self.control.set_status(symbol, "active", None)
            elif not desired and (symbol in self.active or status != "unsubscribed"):
                await self.apply("unsubscribe", symbol, exchange)

    # -- the stream ----------------------------------------------------------------------
    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, msg_id, fields: dict) -> None:
        op = fields.get(b"op", b"").decode()
        try:
            symbol = normalize_symbol(fields.get(b"symbol", b"").decode())
            raw_exchange = fields.get(b"exchange", b"").decode()
            exchange = normalize_exchange(raw_exchange) if raw_exchange else infer_exchange(symbol)
            if op not in ("subscribe", "unsubscribe"):
                raise SymbolError(f"unknown op {op!r}")
        except SymbolError as exc:
            log.warning("malformed command dropped", extra={"fields": {"id": msg_id.decode(), "error": str(exc)}})
            await self._redis.xack(STREAM, GROUP, msg_id)
            return
        if op == "subscribe" and symbol in self._failed:
            self._failed.pop(symbol)  # an explicit new request deserves a new attempt
        await self.apply(op, symbol, exchange)
        await self._redis.xack(STREAM, GROUP, msg_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume commands until `stop`; survive Redis and PostgreSQL outages by reconciling."""
        last_reconcile = asyncio.get_running_loop().time()
        start_id = "0"  # first our own pending (delivered, never acknowledged) commands
        while not stop.is_set():
            try:
                if self._redis is None:
                    self._redis = aioredis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=3)
                    await self._ensure_group()
                    start_id = "0"
                    await self.reconcile()  # commands may have been missed while Redis was away
                reply = await self._redis.xreadgroup(GROUP, self.consumer, {STREAM: start_id}, count=50, block=1000)
                entries = reply[0][1] if reply else []
                if start_id == "0" and not entries:
                    start_id = ">"
                for msg_id, fields in entries:
                    await self._handle(msg_id, fields)
                now = asyncio.get_running_loop().time()
                if now - last_reconcile >= self.reconcile_interval_s:
                    last_reconcile = now
                    await self.reconcile()
            except (RedisError, OSError) as exc:
                log.warning("redis unavailable; reconciling from PostgreSQL",
                            extra={"fields": {"error": str(exc)[:200]}})
                await self._drop_redis()
                await self._safe_reconcile()
                await _sleep_or_stop(stop, 2.0)
            except Exception as exc:  # PostgreSQL down while recording: retried, command stays pending
                log.warning("subscription bookkeeping failed; will retry",
                            extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})
                start_id = "0"
                await _sleep_or_stop(stop, 2.0)
        await self._drop_redis()

    async def _safe_reconcile(self) -> None:
        try:
            await self.reconcile()
        except Exception as exc:
            log.warning("reconcile failed", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})

    async def _drop_redis(self) -> None:
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception:
                pass
            self._redis = None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
