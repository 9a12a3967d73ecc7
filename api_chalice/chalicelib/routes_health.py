"""Health, statistics and the list of recently recorded symbols.

Statistics come from the writer-maintained `ingest_counters` and from the planner's row
estimates, never from COUNT(*) over the data tables, so they answer in milliseconds at any size.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
from chalice import Blueprint, Response

from . import queries
from .db import get_db, get_redis, plan_rows
from .errors import ServiceUnavailable
from .middleware import api_view
from .observability import logger

bp = Blueprint(__name__)

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)


def _ts(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


async def _estimate(conn: asyncpg.Connection, explain_sql: str, *args) -> int:
    return plan_rows(await conn.fetchval(explain_sql, *args))


def _heartbeat_json(row: asyncpg.Record | None, now: dt.datetime) -> dict | None:
    if row is None:
        return None
    return {"collector_id": row["collector_id"], "connected": row["connected"],
            "last_message_at": _ts(row["last_message_at"]), "messages_per_s": row["messages_per_s"],
            "queue_depth": row["queue_depth"], "spool_bytes": row["spool_bytes"],
            "updated_at": _ts(row["updated_at"]),
            "age_s": round((now - row["updated_at"]).total_seconds(), 3)}


@bp.route("/health", methods=["GET"])
@api_view
def health():
    now = dt.datetime.now(UTC)

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
    now = dt.datetime.now(UTC)
    since = now - HOUR

    async def gather(conn: asyncpg.Connection) -> dict:
        totals = {r["table_name"]: r for r in await conn.fetch(queries.COUNTER_TOTALS)}
        out = {}
        for table, explain in (("tick_data", queries.ESTIMATE_TICKS_SINCE),
                               ("level2_data", queries.ESTIMATE_LEVEL2_SINCE),
                               ("quote_data", queries.ESTIMATE_QUOTES_SINCE)):
            t = totals.get(table)
            latest = t["latest"] if t is not None else None
            entry = {"total_records": t["total_records"] if t is not None else 0}
            if table == "tick_data":
                entry["unique_symbols"] = t["unique_symbols"] if t is not None else 0
            entry["earliest_timestamp"] = _ts(t["earliest"]) if t is not None else None
            entry["latest_timestamp"] = _ts(latest)
            # Nothing newer than an hour means exactly zero; otherwise the planner's estimate.
            if latest is None or latest < since:
                entry["recent_hour_count"] = 0
                entry["estimated"] = []
            else:
                entry["recent_hour_count"] = await _estimate(conn, explain, since)
                entry["estimated"] = ["recent_hour_count"]
            out[table] = entry
        return out

    tables = get_db().run(gather)
    return {"tick_data": tables["tick_data"], "level2_data": tables["level2_data"],
            "quote_data": tables["quote_data"], "timestamp": _ts(now),
            "notes": "total_records, unique_symbols and earliest/latest timestamps come from counters the "
                     "collector maintains with every batch; recent_hour_count is the query planner's estimate "
                     "wherever 'estimated' lists it"}


@bp.route("/api/symbols", methods=["GET"])
@api_view
def symbols():
    now = dt.datetime.now(UTC)
    since = now - DAY

    async def gather(conn: asyncpg.Connection) -> list[dict]:
        out = []
        for r in await conn.fetch(queries.RECENT_SYMBOLS, since):
            last_tick, last_l2 = r["last_tick"], r["last_level2"]
            ticks = (await _estimate(conn, queries.ESTIMATE_SYMBOL_TICKS_SINCE, r["symbol"], since)
                     if last_tick is not None and last_tick >= since else 0)
            level2 = (await _estimate(conn, queries.ESTIMATE_SYMBOL_LEVEL2_SINCE, r["symbol"], since)
                      if last_l2 is not None and last_l2 >= since else 0)
            out.append({"symbol": r["symbol"], "exchange": r["exchange"], "tick_count": ticks,
                        "last_tick_update": _ts(last_tick), "level2_count": level2,
                        "last_level2_update": _ts(last_l2)})
        return out

    rows = get_db().run(gather)
    return {"count": len(rows), "symbols": rows, "estimated": ["tick_count", "level2_count"]}
