"""Health, statistics and the list of recently recorded symbols.

Statistics come from counters the writer maintains in each batch's transaction
(`ingest_counters`, `ingest_minute_counters`), never from COUNT(*) over the data tables,
so they answer in milliseconds at any size.
"""

from __future__ import annotations

import datetime as dt
import json

import asyncpg
from chalice import Blueprint, Response

from . import queries
from .config import get_settings
from .db import get_db, get_redis
from .errors import ServiceUnavailable
from .middleware import api_view
from .observability import logger

bp = Blueprint(__name__)

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)


def _ts(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


def _heartbeat_json(row: asyncpg.Record | None, now: dt.datetime) -> dict | None:
    if row is None:
        return None
    return {"collector_id": row["collector_id"], "connected": row["connected"],
            "last_message_at": _ts(row["last_message_at"]), "messages_per_s": row["messages_per_s"],
            "queue_depth": row["queue_depth"], "spool_bytes": row["spool_bytes"],
            "updated_at": _ts(row["updated_at"]),
            "age_s": round((now - row["updated_at"]).total_seconds(), 3),
            # jsonb arrives as its text (no codec is registered); a collector older than sql/005 wrote none
            "latency": json.loads(row["latency"]) if row["latency"] is not None else {},
            # Per symbol: its market (open|closed|halted, next open or close), last trade and how far
            # it is recorded, as the collector's heartbeat wrote them.
            "markets": json.loads(row["markets"]) if row["markets"] is not None else {}}


@bp.route("/health", methods=["GET"])
@api_view
def health():
    now = get_settings().clock.now_dt()

    async def probe(conn: asyncpg.Connection):
        await conn.fetchval(queries.PING)
        return await conn.fetchrow(queries.LATEST_HEARTBEAT)

    problem = None
    try:
        heartbeat = get_db().run(probe)
        database = True
    except ServiceUnavailable as exc:
        heartbeat, database, problem = None, False, exc.detail
    redis_ok = get_redis().ping()
    healthy = database and redis_ok
    if not healthy:
        logger.warning("unhealthy", extra={"database": database, "redis": redis_ok, "detail": problem})
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": _ts(now),
        "services": {"database": "connected" if database else "unavailable",
                     "redis": "connected" if redis_ok else "unavailable"},
        "collector": _heartbeat_json(heartbeat, now),
    }
    return Response(body=body, status_code=200 if healthy else 503, headers={"Content-Type": "application/json"})


@bp.route("/api/stats", methods=["GET"])
@api_view
def stats():
    now = get_settings().clock.now_dt()
    since = now - HOUR

    async def gather(conn: asyncpg.Connection) -> dict:
        totals = {r["table_name"]: r for r in await conn.fetch(queries.COUNTER_TOTALS)}
        recent = {r["table_name"]: r["n"] for r in await conn.fetch(queries.RECENT_COUNTS, since)}
        out = {}
        for table in ("tick_data", "level2_data", "quote_data"):
            t = totals.get(table)
            entry = {"total_records": t["total_records"] if t is not None else 0}
            if table == "tick_data":
                entry["unique_symbols"] = t["unique_symbols"] if t is not None else 0
            entry["earliest_timestamp"] = _ts(t["earliest"]) if t is not None else None
            entry["latest_timestamp"] = _ts(t["latest"]) if t is not None else None
            entry["recent_hour_count"] = recent.get(table, 0)
            entry["estimated"] = []
            out[table] = entry
        return out

    tables = get_db().run(gather)
    return {"tick_data": tables["tick_data"], "level2_data": tables["level2_data"],
            "quote_data": tables["quote_data"], "timestamp": _ts(now),
            "notes": "every figure comes from counters the collector maintains with every batch; "
                     "recent_hour_count counts whole minutes, from the start of the minute an hour ago; "
                     "no figure is an estimate"}


@bp.route("/api/symbols", methods=["GET"])
@api_view
def symbols():
    now = get_settings().clock.now_dt()
    since = now - DAY

    async def gather(conn: asyncpg.Connection) -> list[dict]:
        counts = {(r["symbol"], r["table_name"]): r["n"]
                  for r in await conn.fetch(queries.RECENT_SYMBOL_COUNTS, since)}
        out = []
        for r in await conn.fetch(queries.RECENT_SYMBOLS, since):
            last_tick, last_l2 = r["last_tick"], r["last_level2"]
            out.append({"symbol": r["symbol"], "exchange": r["exchange"],
                        "tick_count": counts.get((r["symbol"], "tick_data"), 0),
                        "last_tick_update": _ts(last_tick),
                        "level2_count": counts.get((r["symbol"], "level2_data"), 0),
                        "last_level2_update": _ts(last_l2)})
        return out

    rows = get_db().run(gather)
    return {"count": len(rows), "symbols": rows, "estimated": []}
