"""The API's one data-access module: PostgreSQL through asyncpg, Redis through redis-py.

Chalice views are synchronous: a Lambda instance serves one request at a time and `chalice
local` one request per thread. So one event loop runs on one background thread and owns a small
asyncpg pool; a view hands it a coroutine and waits for the result. The loop and the pool are
created by the first request that needs them and kept warm for the next ones. Every statement
runs under a server-side statement_timeout and a client-side deadline.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import asyncpg
import redis

from .config import Settings, forget_settings, get_settings
from .errors import DatabaseUnavailable, QueryTimeout, ServiceUnavailable

T = TypeVar("T")

# Errors that mean "the server or the connection is gone", as opposed to a bad statement.
_CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
# Worth one retry on a fresh connection: the pooled one died while idle (a frozen Lambda, a
# proxy's idle timeout, a database restart).
_STALE_CONNECTION_ERRORS = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    # A connection the server ended while it sat idle in the pool can surface as this.
    asyncpg.exceptions.InternalClientError,
    ConnectionResetError,
    BrokenPipeError,
)
_AUTH_ERRORS = (
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
)
_UNAVAILABLE = ("the database is not answering; the request can be retried in a few seconds "
                "(see /health)")


def read_secret(arn: str, max_age_s: int, transform: str | None = None, force: bool = False) -> Any:
    """A Secrets Manager value through Powertools' cache (fetched again after `max_age_s`)."""
    from aws_lambda_powertools.utilities import parameters  # boto3 is loaded only when a secret is used

    try:
        return parameters.get_secret(arn, transform=transform, max_age=max_age_s, force_fetch=force)
    except Exception as exc:  # botocore and Powertools raise many shapes; the secret's value never shows
        raise ServiceUnavailable("a credential the API needs cannot be read right now; retry shortly",
                                 title="Configuration unavailable",
                                 detail=f"cannot read secret {arn}: {type(exc).__name__}") from None


def connect_kwargs(settings: Settings, refresh_secret: bool = False) -> dict[str, Any]:
    """asyncpg.connect() arguments from the settings, reading the database secret if one is named."""
    kwargs: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "application_name": "rdc-api",
            "timezone": "UTC",
        },
    }
    if settings.database_url:
        kwargs["dsn"] = settings.database_url
    elif settings.database_secret_arn:
        secret = read_secret(settings.database_secret_arn, settings.secret_max_age_s, transform="json",
                             force=refresh_secret)
        if not isinstance(secret, dict) or not secret.get("username") or "password" not in secret:
            raise ServiceUnavailable("the API's database credentials are incomplete; the operator must fix them",
                                     title="Configuration error",
                                     detail=f"secret {settings.database_secret_arn} lacks username/password")
        # DB_HOST wins: in AWS it is the RDS Proxy, while the secret names the instance.
        kwargs.update(
            host=settings.db_host or secret.get("host") or "127.0.0.1",
            port=settings.db_port if settings.db_host else int(secret.get("port") or settings.db_port),
            user=secret["username"],
            password=secret["password"],
            database=settings.db_name or secret.get("dbname") or "rithmic_db",
        )
    else:
        kwargs.update(host=settings.db_host or "127.0.0.1", port=settings.db_port, user=settings.db_user,
                      password=settings.db_password or None, database=settings.db_name or "rithmic_db")
    if settings.db_sslmode:
        kwargs["ssl"] = settings.db_sslmode
    return kwargs


class Database:
    """A pool on a background event loop, usable from any thread. Nothing connects until first use."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._refresh_secret = False

    # -- lifecycle ----------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(target=loop.run_forever, name="rdc-api-db", daemon=True)
                    thread.start()
                    self._thread, self._loop = thread, loop
        return self._loop

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is None:
                refresh, self._refresh_secret = self._refresh_secret, False
                kwargs = await asyncio.get_running_loop().run_in_executor(
                    None, connect_kwargs, self._settings, refresh)
                # min_size=0: a Lambda that only answers /openapi.json never opens a connection.
                self._pool = await asyncpg.create_pool(
                    min_size=0, max_size=self._settings.db_pool_max_size,
                    max_inactive_connection_lifetime=300, **kwargs,
                )
        return self._pool

    def stop(self) -> None:
        """Close the pool and end the loop's thread (tests and benchmarks; a Lambda just freezes)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            fut = asyncio.run_coroutine_threadsafe(pool.close(), loop)
            try:
                fut.result(timeout=5)
            except Exception:  # a hung server: drop the sockets instead
                loop.call_soon_threadsafe(pool.terminate)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()

    # -- running work -------------------------------------------------------------------
    async def _with_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        # Runs on the loop's thread: it must not log (log lines carry the request id of the
        # request's own thread); failures carry their detail to the middleware instead.
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                async with pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
                    return await work(conn)
            except asyncpg.exceptions.QueryCanceledError:
                raise QueryTimeout(
                    f"the query did not finish within {self._settings.db_statement_timeout_ms} ms; "
                    f"ask for a shorter time range or a smaller limit", detail="statement_timeout") from None
            except _STALE_CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise DatabaseUnavailable(_UNAVAILABLE, detail=f"{type(exc).__name__} twice") from None
            except _AUTH_ERRORS as exc:
                # The password may have been rotated: the next request rebuilds the pool from a
                # freshly read secret.
                await self._discard_pool()
                raise DatabaseUnavailable(_UNAVAILABLE, detail=f"login refused: {type(exc).__name__}") from None
            except _CONNECTION_ERRORS as exc:
                raise DatabaseUnavailable(_UNAVAILABLE, detail=type(exc).__name__) from None
        raise AssertionError("unreachable")

    async def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        self._refresh_secret = True
        if pool is not None:
            pool.terminate()

    def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work(conn)` on a pooled connection and return its result (from any thread)."""
        loop = self._ensure_loop()
        fut = asyncio.run_coroutine_threadsafe(self._with_connection(work), loop)
        s = self._settings
        # Twice a connect (the retry) plus the statement's own limit, and a little slack.
        deadline = 2 * s.db_connect_timeout_s + s.db_statement_timeout_ms / 1000 + 2
        try:
            return fut.result(timeout=deadline)
        except FutureTimeout:
            fut.cancel()
            raise QueryTimeout(f"the database did not answer within {deadline:.0f} s; retry shortly",
                               detail="client deadline") from None

    def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return self.run(lambda conn: conn.fetch(sql, *args))

    def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return self.run(lambda conn: conn.fetchrow(sql, *args))

    def fetchval(self, sql: str, *args: Any) -> Any:
        return self.run(lambda conn: conn.fetchval(sql, *args))


def plan_rows(plan: Any) -> int:
    """The planner's row estimate from the result of an `EXPLAIN (FORMAT JSON)` statement."""
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class RedisUnavailable(Exception):
    """Redis did not answer."""


class RedisClient:
    """A lazily created redis-py client with short timeouts (thread-safe: it has its own pool)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def client(self) -> redis.Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    s = self._settings
                    password = None
                    if s.redis_auth_secret_arn:
                        password = read_secret(s.redis_auth_secret_arn, s.secret_max_age_s)
                    self._client = redis.Redis.from_url(
                        s.redis_url, password=password, socket_connect_timeout=s.redis_timeout_s,
                        socket_timeout=s.redis_timeout_s, health_check_interval=30,
                    )
        return self._client

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def xadd(self, stream: str, fields: dict[str, str], maxlen: int = 100_000) -> str:
        try:
            entry = self.client().xadd(stream, fields, maxlen=maxlen, approximate=True)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(type(exc).__name__) from None
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client().get(key)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(type(exc).__name__) from None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


_lock = threading.Lock()
_db: Database | None = None
_redis: RedisClient | None = None


def get_db() -> Database:
    global _db
    if _db is None:
        with _lock:
            if _db is None:
                _db = Database(get_settings())
    return _db


def get_redis() -> RedisClient:
    global _redis
    if _redis is None:
        with _lock:
            if _redis is None:
                _redis = RedisClient(get_settings())
    return _redis


def reset_for_tests() -> None:
    """Close the pool and the Redis client and forget the settings and cached secrets, so the next
    request starts from the environment as it is now (tests and benchmarks change it)."""
    global _db, _redis
    with _lock:
        db, redis_client, _db, _redis = _db, _redis, None, None
    if db is not None:
        db.stop()
    if redis_client is not None:
        redis_client.close()
    forget_settings()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()
