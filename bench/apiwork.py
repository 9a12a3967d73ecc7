"""Inside the `api` worker process: the API called in-process the way Lambda calls it
(`app(event, context)` with an API Gateway proxy event), and the floor under it: the same SQL on a
warm asyncpg connection plus JSON encoding of the same rows, with no framework in between.

A spec is {"endpoints": {name: [request, ...]}, "database_url", "redis_url", "warmup"}; a
request is {"path": ..., "raw": [kind, args...]} (see bench.api.requests_for).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import asyncpg

from .stats import summary_ms

API_DIR = Path(__file__).resolve().parent.parent / "api_chalice"
UTC = dt.UTC
NEG_INF = dt.datetime.min.replace(tzinfo=UTC)
POS_INF = dt.datetime.max.replace(tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def _import_api():
    if str(API_DIR) not in sys.path:
        sys.path.insert(0, str(API_DIR))
    import app as api_app  # noqa: PLC0415 - the API is a Chalice project, importable only from its directory
    from chalicelib import queries

    return api_app.app, queries


def _encode(rows) -> bytes:
    out = []
    for r in rows:
        d = dict(r)
        for k, v in d.items():
            if isinstance(v, dt.datetime):
                d[k] = v.isoformat(timespec="microseconds")
        out.append(d)
    return json.dumps(out).encode()


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


async def _raw_one(conn: asyncpg.Connection, queries, raw: list) -> int:
    kind = raw[0]
    if kind == "ticks":
        symbol, limit = raw[1], raw[2]
        rows = await conn.fetch(queries.TICKS_DESC, symbol, NEG_INF, POS_INF, POS_INF, 0, limit + 1)
    elif kind == "bars":
        symbol, start, end = raw[1], _parse_time(raw[2]), _parse_time(raw[3])
        rows = await conn.fetch(queries.BARS, symbol, MINUTE, start, end)
    elif kind == "book":
        symbol, at = raw[1], _parse_time(raw[2])
        snapshot_at = await conn.fetchval(queries.BOOK_SNAPSHOT_TIME, symbol, at, at - dt.timedelta(days=7))
        rows = await conn.fetch(queries.BOOK_ROWS, symbol, snapshot_at, at) if snapshot_at else []
    elif kind == "stats":
        rows = await conn.fetch(queries.COUNTER_TOTALS)
    else:
        raise ValueError(f"unknown raw request kind {kind!r}")
    return len(_encode(rows))


def measure_raw(spec: dict) -> dict:
    """p50/p99 of SQL + JSON encoding per endpoint, on one warm connection."""
    _, queries = _import_api()
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(spec["database_url"], server_settings={"timezone": "UTC"}))
    out = {}
    try:
        for name, requests in spec["endpoints"].items():
            for req in requests[: spec["warmup"]]:
                loop.run_until_complete(_raw_one(conn, queries, req["raw"]))
            times = []
            for req in requests:
                t0 = time.perf_counter()
                loop.run_until_complete(_raw_one(conn, queries, req["raw"]))
                times.append(time.perf_counter() - t0)
            out[name] = summary_ms(times)
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    return out


def measure_lambda(spec: dict) -> dict:
    """p50/p99 of `app(event, context)` per endpoint; events are built before the clock starts."""
    os.environ["DATABASE_URL"] = spec["database_url"]
    os.environ["REDIS_URL"] = spec["redis_url"]
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "rdc-api")
    app, _ = _import_api()
    from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

    converter = LambdaEventConverter(RouteMatcher(list(app.routes)), app.api.binary_types)
    out = {}
    for name, requests in spec["endpoints"].items():
        events = [converter.create_lambda_event(method="GET", path=req["path"], headers={"host": "bench"}, body=b"")
                  for req in requests]

        def call(event):
            response = app(event, LambdaContext(function_name="rdc-api", memory_size=1024))
            if response["statusCode"] != 200:
                raise RuntimeError(f"{event['path']}: {response['statusCode']} {str(response.get('body'))[:300]}")

        for event in events[: spec["warmup"]]:
            call(event)
        times = []
        for event in events:
            t0 = time.perf_counter()
            call(event)
            times.append(time.perf_counter() - t0)
        out[name] = summary_ms(times)
    return out


def measure_in_process(spec: dict) -> dict:
    return {"raw": measure_raw(spec), "in_process": measure_lambda(spec)}
