"""The API's settings: read from the environment once per process and handed to everything else.

Reading them does no I/O. Secrets named by ARN (database login, Redis token, API keys) are
fetched later, by the module that needs them, through Powertools parameters with a cache.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rdc_common.clock import Clock, ClockError, LiveClock, clock_from_env

SERVICE = "rdc-api"
DEFAULT_METRICS_NAMESPACE = "RithmicDataCollector"


class ConfigError(ValueError):
    """A setting is malformed; the message names it and says what it expects."""


@dataclass(frozen=True)
class Settings:
    # PostgreSQL: a URL, or parts, or (AWS) a secret with username/password/host/port/dbname.
    database_url: str | None = field(default=None, repr=False)
    db_host: str | None = None  # None: the secret's host, else 127.0.0.1
    db_port: int = 5432
    db_name: str | None = None  # None: the secret's dbname, else rithmic_db
    db_user: str = "postgres"
    db_password: str = field(default="", repr=False)
    db_sslmode: str | None = None
    database_secret_arn: str | None = None
    db_statement_timeout_ms: int = 5000
    db_connect_timeout_s: float = 3.0
    db_pool_max_size: int = 4
    # Redis: where subscription commands go.
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_auth_secret_arn: str | None = None
    redis_timeout_s: float = 1.0
    # Access control.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys_secret_arn: str | None = None
    require_api_key_for_writes: bool = False
    secret_max_age_s: int = 300
    # Request limits.
    max_range: dt.timedelta = dt.timedelta(days=7)
    max_daily_bars_range: dt.timedelta = dt.timedelta(days=366)
    max_body_bytes: int = 4096
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE
    # "Now" for defaults such as the end of a bars range: RDC_CLOCK_* when set (demos, tests).
    clock: Clock = field(default_factory=LiveClock)
    # The Parquet archive (GET /api/archive): s3://bucket/prefix (links are presigned for
    # archive_url_expires_s) or a local directory, whose files NGINX serves under archive_download_url.
    archive_url: str | None = None
    archive_download_url: str | None = None
    archive_url_expires_s: int = 3600

    @property
    def api_keys_configured(self) -> bool:
        return bool(self.api_keys) or bool(self.api_keys_secret_arn)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number between {lo} and {hi}, not {raw[:20]!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number between {lo} and {hi}, not {raw[:20]!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true or false), not {raw[:20]!r}")


def _optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = _optional(env, "DATABASE_URL")
    if database_url and urlsplit(database_url).scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL must be a postgresql://user:password@host:port/dbname URL")
    redis_url = _optional(env, "REDIS_URL") or "redis://127.0.0.1:6379/0"
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must be a redis:// or rediss:// URL")
    sslmode = _optional(env, "DB_SSLMODE")
    if sslmode and sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        raise ConfigError("DB_SSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full")
    keys = tuple(k.strip() for k in env.get("API_KEYS", "").split(",") if k.strip())
    try:
        clock = clock_from_env(env)
    except ClockError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(
        database_url=database_url,
        db_host=_optional(env, "DB_HOST"),
        db_port=_int(env, "DB_PORT", 5432, 1, 65535),
        db_name=_optional(env, "DB_NAME"),
        db_user=_optional(env, "DB_USER") or "postgres",
        db_password=env.get("DB_PASSWORD", ""),
        db_sslmode=sslmode,
        database_secret_arn=_optional(env, "DATABASE_SECRET_ARN"),
        db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 5000, 1, 600_000),
        db_connect_timeout_s=_float(env, "DB_CONNECT_TIMEOUT_S", 3.0, 0.1, 60),
        db_pool_max_size=_int(env, "DB_POOL_MAX_SIZE", 4, 1, 50),
        redis_url=redis_url,
        redis_auth_secret_arn=_optional(env, "REDIS_AUTH_SECRET_ARN"),
        redis_timeout_s=_float(env, "REDIS_TIMEOUT_S", 1.0, 0.05, 30),
        api_keys=keys,
        api_keys_secret_arn=_optional(env, "API_KEYS_SECRET_ARN"),
        require_api_key_for_writes=_bool(env, "REQUIRE_API_KEY_FOR_WRITES"),
        secret_max_age_s=_int(env, "SECRET_MAX_AGE_S", 300, 0, 86_400),
        max_range=dt.timedelta(days=_int(env, "API_MAX_RANGE_DAYS", 7, 1, 3660)),
        max_daily_bars_range=dt.timedelta(days=_int(env, "API_MAX_DAILY_BARS_RANGE_DAYS", 366, 1, 36600)),
        max_body_bytes=_int(env, "API_MAX_BODY_BYTES", 4096, 64, 1 << 20),
        metrics_namespace=_optional(env, "POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
        clock=clock,
        archive_url=_optional(env, "ARCHIVE_URL"),
        archive_download_url=(_optional(env, "ARCHIVE_DOWNLOAD_URL") or "").rstrip("/") or None,
        archive_url_expires_s=_int(env, "ARCHIVE_URL_EXPIRES_S", 3600, 60, 7 * 86_400),
    )


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, read on first use (a Lambda cold start, or the first local request)."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = load_settings()
    return _settings


def forget_settings() -> None:
    """Drop the cached settings so the next request reads the environment again (tests, bench)."""
    global _settings
    with _lock:
        _settings = None


def metrics_namespace() -> str:
    """The CloudWatch namespace, needed when the Metrics object is built at import time."""
    return _optional(os.environ, "POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE
