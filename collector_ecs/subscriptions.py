"""Keeps the session's subscriptions equal to the desired set, and follows products as their front
month through rolls and expiries.

The API records each request in PostgreSQL (durable) and adds a command to a Redis
Stream (prompt). We read the stream through a consumer group and acknowledge a command
only after its outcome is recorded, and we reconcile with the table at start-up and
periodically, so a command sent while we or Redis were down is not lost.

A row of kind 'product' (`ES`) stands for "its front month, for as long as we run": reconciling
writes a `rolls` row and a contract row (product = ES) for each front month it comes to, from the
catalogue's calendar (collector_ecs/rolls.py). Every contract row, followed or explicit, ends as
'expired' at its expiry instant. The roll scheduler task (`run_schedule`) wakes at the next roll or
expiry instant on the clock, so they happen on time rather than at the next periodic reconcile; a
restart reconciles from the tables and the clock and so ends in the same state (every row write is
idempotent).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from rdc_common.clock import LiveClock
from rdc_common.products import (
    PRODUCTS,
    SymbolError,
    infer_exchange,
    is_product_code,
    normalize_exchange,
    normalize_symbol,
)

from . import rolls
from .session import SubscriptionRefused

log = logging.getLogger("collector.subscriptions")

STREAM = "rdc:commands"
GROUP = "collector"
SCHEDULE_MAX_SLEEP_S = 30.0  # real seconds: the scheduler looks at the clock again at least this often
UTC = dt.UTC


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, UTC)


class SubscriptionManager:
    def __init__(self, session, control, redis_url: str, consumer: str, gaps=None,
                 reconcile_interval_s: float = 10.0, clock=None):
        self.session = session
        self.control = control
        self.redis_url = redis_url
        self.consumer = consumer
        self.gaps = gaps
        self.reconcile_interval_s = reconcile_interval_s
        self.clock = clock or getattr(control, "clock", None) or LiveClock()
        self.active: dict[str, str] = {}  # symbol -> exchange, what the session is subscribed to
        self.followed: dict[str, str] = {}  # product code -> exchange, products followed as their front month
        self._expiries: dict[str, float] = {}  # active symbol -> when it stops trading (catalogue contracts)
        self._rolled: dict[str, set[str]] = {}  # product -> to_symbols of its rows in `rolls`
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()  # one change at a time: stream and reconciler share the session
        self._reconcile_lock = asyncio.Lock()  # one reconcile at a time (stream loop, scheduler)
        self._changed = asyncio.Event()  # wakes the scheduler when what it waits for may have changed
        self._redis: aioredis.Redis | None = None

    @property
    def roll_lead_s(self) -> float:
        """Clock seconds before a roll instant the new front month is subscribed."""
        return max(rolls.ROLL_LEAD_S, self.clock.clock_seconds(rolls.ROLL_LEAD_REAL_S))

    # -- applying one change -----------------------------------------------------------
    async def apply(self, op: str, symbol: str, exchange: str) -> tuple[str, str | None]:
        """Subscribe or unsubscribe; returns the (status, reason) recorded for the symbol."""
        async with self._lock:
            if op == "subscribe":
                expiry = rolls.contract_expiry(symbol, self.clock.now())
                if symbol in self.active:
                    status, reason = "active", None
                elif expiry is not None and self.clock.now() >= expiry:
                    # Not sent to the gateway: it would refuse it, and a retry would never succeed.
                    status, reason = "expired", rolls.expired_reason(symbol, expiry)
                    log.warning("subscription refused: contract expired",
                                extra={"fields": {"symbol": symbol, "exchange": exchange, "reason": reason}})
                else:
                    try:
                        await self.session.subscribe(symbol, exchange)
                        self.active[symbol] = exchange
                        if expiry is not None:
                            self._expiries[symbol] = expiry
                            self._changed.set()
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
                    self._expiries.pop(symbol, None)
                    if self.gaps is not None:
                        self.gaps.forget(symbol)
                status, reason = "unsubscribed", None
            else:
                raise ValueError(op)
            await self.control.set_status(symbol, status, reason)
            return status, reason

    async def expire(self, symbol: str, exchange: str, expiry: float) -> None:
        """The contract stopped trading: stop recording it and say why (idempotent)."""
        async with self._lock:
            if symbol in self.active:
                try:
                    await self.session.unsubscribe(symbol, self.active[symbol])
                except (SubscriptionRefused, TimeoutError) as exc:
                    # A gateway may already have delisted it and refuse the unsubscribe: either way
                    # it sends nothing more for it (and the library no longer resubscribes it).
                    log.info("unsubscribe of an expired contract refused",
                             extra={"fields": {"symbol": symbol, "error": str(exc)[:200]}})
                del self.active[symbol]
                if self.gaps is not None:
                    self.gaps.end_outage(symbol, _at(expiry))  # an outage over the expiry ends at it
            self._expiries.pop(symbol, None)
            reason = rolls.expired_reason(symbol, expiry)
            await self.control.set_status(symbol, "expired", reason)
            log.info("contract expired; subscription ended",
                     extra={"fields": {"symbol": symbol, "exchange": exchange, "reason": reason}})

    async def seed(self, specs) -> None:
        """Record the configured SYMBOLS as wanted (products as followed products), then reconcile."""
        for spec in specs:
            await self.control.want(spec.symbol, spec.exchange, "product" if spec.is_product else "contract")
        await self.reconcile()

    async def reconcile(self) -> None:
        async with self._reconcile_lock:
            rows = await self.control.desired_set()
            changed = False
            for row in rows:
                if row["kind"] == "product":
                    changed |= await self._reconcile_product(row)
            if changed:
                rows = await self.control.desired_set()
            now = self.clock.now()
            for row in rows:
                if row["kind"] == "contract":
                    await self._reconcile_contract(row, now)

    async def _reconcile_contract(self, row, now: float) -> None:
        symbol, exchange, desired, status = row["symbol"], row["exchange"], row["desired"], row["status"]
        if status == "expired":  # terminal until someone asks for it again (the row goes back to pending)
            if symbol in self.active:
                await self.expire(symbol, exchange, self._expiries.get(symbol) or now)
            return
        if desired:
            expiry = rolls.contract_expiry(symbol, now)
            if expiry is not None and now >= expiry:
                await self.expire(symbol, exchange, expiry)
                return
        if desired and symbol not in self.active and status != "failed":
            await self.apply("subscribe", symbol, exchange)
        elif desired and symbol in self.active and status != "active":
            await self.control.set_status(symbol, "active", None)
        elif not desired and (symbol in self.active or status != "unsubscribed"):
            await self.apply("unsubscribe", symbol, exchange)

    async def _reconcile_product(self, row) -> bool:
        """Follow or stop following one product; True when contract rows changed."""
        code, exchange = row["symbol"], row["exchange"]
        if not row["desired"]:
            self.followed.pop(code, None)
            if row["status"] == "unsubscribed":
                return False
            await self.control.unfollow(code)
            await self.control.set_status(code, "unsubscribed", None)
            log.info("product no longer followed", extra={"fields": {"product": code}})
            return True
        self.followed[code] = exchange
        product = rolls.catalogue_product(code)
        if product is None:
            changed = await self._follow_from_gateway(code, exchange)
        else:
            changed = await self._follow(product, exchange)
        if row["status"] != "active":
            await self.control.set_status(code, "active", None)
        return changed

    async def _follow(self, product, exchange: str) -> bool:
        """Write the rolls (and the front months' contract rows) due by now. Each contract row is
        written before its rolls row, so a crash in between leaves a roll that the next reconcile
        writes again, never a rolls row without its subscription."""
        code = product.code
        done = self._rolled.get(code)
        if done is None:
            done = self._rolled[code] = await self.control.rolled(code)
            self._changed.set()  # newly followed: the scheduler has a roll instant to wait for
        changed = False
        for roll in rolls.due(product, self.clock.now(), self.roll_lead_s, first=not done):
            if roll.to_symbol in done:
                continue
            await self.control.want_for_product(roll.to_symbol, exchange, code)
            new = await self.control.record_roll(code, exchange, roll.from_symbol, roll.to_symbol, _at(roll.at))
            done.add(roll.to_symbol)
            changed = True
            if new:
                log.info("roll" if roll.from_symbol else "following product", extra={"fields": {
                    "product": code, "exchange": exchange, "from": roll.from_symbol, "to": roll.to_symbol,
                    "at": _at(roll.at).isoformat()}})
        if changed:
            self._changed.set()
        return changed

    async def _follow_from_gateway(self, code: str, exchange: str) -> bool:
        """A product the catalogue lacks (none today: SYMBOLS and the API accept catalogue products
        only) has no calendar here: follow the gateway's front month of the moment, without rolls."""
        done = self._rolled.get(code)
        if done is None:
            done = self._rolled[code] = await self.control.rolled(code)
        if done:
            return False
        try:
            symbol = await self.session.client.get_front_month_contract(code, exchange)
        except Exception as exc:
            log.error("cannot resolve front month", extra={"fields": {"product": code, "error": str(exc)[:200]}})
            return False
        await self.control.want_for_product(symbol, exchange, code)
        await self.control.record_roll(code, exchange, None, symbol, self.clock.now_dt())
        done.add(symbol)
        return True

    # -- the roll scheduler ----------------------------------------------------------------
    def next_instant(self, t: float) -> float | None:
        """The next clock instant after `t` when a roll or an expiry falls due."""
        out = [e for e in self._expiries.values() if e > t]
        lead = self.roll_lead_s
        for code in self.followed:
            product = PRODUCTS.get(code)
            if product is not None:
                out.append(rolls.next_roll_check(product, t, lead))
        return min(out) if out else None

    async def run_schedule(self, stop: asyncio.Event) -> None:
        """Owned by the supervisor: reconcile at every roll and expiry instant on the clock.

        Sleeps until the next instant (at most SCHEDULE_MAX_SLEEP_S of real time, and less when a
        subscription changes what it waits for), then looks at the clock again: a simulated clock
        may have moved any amount, so an instant counts as reached only when the clock says so."""
        while not stop.is_set():
            self._changed.clear()
            t = self.clock.now()
            nxt = self.next_instant(t)
            wait = SCHEDULE_MAX_SLEEP_S if nxt is None else min(SCHEDULE_MAX_SLEEP_S, self.clock.real_seconds(nxt - t))
            if wait > 0:
                await _wait_any(stop, self._changed, wait)
            if stop.is_set():
                return
            if nxt is not None and self.clock.now() >= nxt:
                try:
                    await self.reconcile()
                except Exception as exc:  # PostgreSQL away: the next wake tries again
                    log.warning("roll/expiry bookkeeping failed; will retry",
                                extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})
                    await _sleep_or_stop(stop, 2.0)

    # -- the stream ----------------------------------------------------------------------
    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, msg_id, fields: dict) -> None:
        op = fields.get(b"op", b"").decode()
        raw_symbol = fields.get(b"symbol", b"").decode()
        product = is_product_code(raw_symbol)
        try:
            symbol = raw_symbol.strip().upper() if product else normalize_symbol(raw_symbol)
            raw_exchange = fields.get(b"exchange", b"").decode()
            exchange = normalize_exchange(raw_exchange) if raw_exchange else infer_exchange(symbol)
            if op not in ("subscribe", "unsubscribe"):
                raise SymbolError(f"unknown op {op!r}")
        except SymbolError as exc:
            log.warning("malformed command dropped", extra={"fields": {"id": msg_id.decode(), "error": str(exc)}})
            await self._redis.xack(STREAM, GROUP, msg_id)
            return
        if product:
            # The API wrote the product row; the command only says "now". Applied like a contract's
            # command (recorded if the row is missing), then the table decides.
            if op == "subscribe":
                await self.control.want(symbol, exchange, "product")
            else:
                await self.control.unwant(symbol)
            await self.reconcile()
        else:
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


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    """Return when either event is set or `seconds` have passed."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
