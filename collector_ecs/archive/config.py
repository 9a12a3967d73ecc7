"""The archiver's settings, read once from the environment: where the archive is, which database,
how long each table stays in PostgreSQL, and the clock that says which days are closed."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from rdc_common.archive_layout import TABLES
from rdc_common.clock import Clock, ClockError, LiveClock, clock_from_env

from ..config import ConfigError, Secret, database_url_from_env

# RETENTION_DAYS_<suffix> per table, with its default: days a table's rows stay in PostgreSQL after
# their UTC day (0 = forever). Trades are the most asked-for and the smallest; the book the largest.
RETENTION_VARIABLES = {"tick_data": ("RETENTION_DAYS_TICKS", 90), "quote_data": ("RETENTION_DAYS_QUOTES", 30),
                       "level2_data": ("RETENTION_DAYS_LEVEL2", 14)}
# A UTC day is archived once the clock is this far past its end: the collector's writer commits within
# milliseconds, the spool replays within seconds of the database coming back, and a restart backfills
# its outage within minutes. Rows that still arrive later are found when retention recounts the day
# before dropping it, and the day is archived again first.
DEFAULT_SAFETY_MARGIN = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ArchiveSettings:
    database_url: Secret
    archive_url: str
    retention_days: dict[str, int]
    safety_margin: dt.timedelta = DEFAULT_SAFETY_MARGIN
    # How long retention waits for a partition's lock before leaving the day for the next run (the
    # drop needs a moment's exclusive lock on the parent table; readers queue behind a waiting drop).
    lock_timeout_s: float = 5.0
    # Files archived side by side (each its own PostgreSQL connection and thread).
    workers: int = 2
    clock: Clock = field(default_factory=LiveClock)
    collector_id: str = field(default_factory=socket.gethostname)
    log_level: str = "INFO"

    def closed_through(self) -> dt.date:
        """The last closed UTC day: its end plus the safety margin has passed on the clock."""
        return (self.clock.now_dt() - self.safety_margin).date() - dt.timedelta(days=1)

    def closes_at(self, day: dt.date) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1) + self.safety_margin


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 36_500:
        raise ConfigError(f"{name} must be a whole number of days from 0 (keep forever) to 36500, not {raw!r}")
    return int(raw)


def load_archive_settings(env: Mapping[str, str] | None = None) -> ArchiveSettings:
    env = dict(os.environ if env is None else env)
    url = (env.get("ARCHIVE_URL") or "").strip()
    if not url:
        raise ConfigError("ARCHIVE_URL is not set: give s3://bucket/prefix or a local directory "
                          "(make run uses .local/archive)")
    margin_raw = (env.get("ARCHIVE_SAFETY_MARGIN_MINUTES") or "").strip()
    if margin_raw and (not margin_raw.isdigit() or int(margin_raw) > 7 * 24 * 60):
        raise ConfigError(f"ARCHIVE_SAFETY_MARGIN_MINUTES must be minutes from 0 to 10080, not {margin_raw!r}")
    margin = dt.timedelta(minutes=int(margin_raw)) if margin_raw else DEFAULT_SAFETY_MARGIN
    try:
        clock = clock_from_env(env)
    except ClockError as exc:
        raise ConfigError(str(exc)) from None
    workers_raw = (env.get("ARCHIVE_WORKERS") or "2").strip()
    if not workers_raw.isdigit() or not 1 <= int(workers_raw) <= 16:
        raise ConfigError(f"ARCHIVE_WORKERS must be a whole number from 1 to 16, not {workers_raw!r}")
    lock_raw = (env.get("ARCHIVE_LOCK_TIMEOUT_S") or "5").strip()
    try:
        lock_timeout = float(lock_raw)
    except ValueError:
        lock_timeout = -1.0
    if not 0.1 <= lock_timeout <= 3600:
        raise ConfigError(f"ARCHIVE_LOCK_TIMEOUT_S must be seconds from 0.1 to 3600, not {lock_raw!r}")
    log_level = env.get("LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
    return ArchiveSettings(
        database_url=Secret(database_url_from_env(env)),
        archive_url=url,
        retention_days={t: _days(env, *RETENTION_VARIABLES[t]) for t in TABLES},
        safety_margin=margin,
        workers=int(workers_raw),
        lock_timeout_s=lock_timeout,
        clock=clock,
        collector_id=env.get("COLLECTOR_ID") or f"archive@{socket.gethostname()}",
        log_level=log_level,
    )
