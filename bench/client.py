"""rdc_client's download rate beside the raw API page rate, for one stored day of ticks of one symbol,
both through NGINX in front of `chalice local` (as a researcher meets the API under `make run`):

    raw         http.client on a keep-alive connection: GET a page of 1,000, json.loads, follow
                next_cursor to the end of the day (the floor any client pays)
    dataframe   rdc_client.Client.ticks(symbol, start, end): the same pages through httpx with
                retries, then one DataFrame with tz-aware timestamps and typed columns

Each is run `reps` times, alternating, and the median rate is reported (rows per second).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import statistics
import time
from urllib.parse import urlencode

from rdc_client import Client

UTC = dt.UTC


def _iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def raw_pages(port: int, symbol: str, start: dt.datetime, end: dt.datetime) -> int:
    """Rows of [start, end) read page by page over one keep-alive connection; returns the row count."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rows = 0
    query = {"start": _iso(start), "end": _iso(end), "order": "asc", "limit": 1000}
    try:
        while True:
            conn.request("GET", f"/api/ticks/{symbol}?{urlencode(query)}")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET /api/ticks/{symbol}: {resp.status} {body[:300]!r}")
            page = json.loads(body)
            rows += len(page["data"])
            if not page["next_cursor"]:
                return rows
            query = {"cursor": page["next_cursor"], "limit": 1000}
    finally:
        conn.close()


def run(nginx_port: int, symbol: str, start: dt.datetime, end: dt.datetime, reps: int) -> dict:
    url = f"http://127.0.0.1:{nginx_port}"
    raw_rates, client_rates = [], []
    rows = 0
    with Client(url, progress=False) as rdc:
        raw_pages(nginx_port, symbol, start, start + dt.timedelta(minutes=5))  # warm both paths
        rdc.ticks(symbol, start, start + dt.timedelta(minutes=5))
        for _ in range(reps):
            t0 = time.perf_counter()
            rows = raw_pages(nginx_port, symbol, start, end)
            raw_rates.append(rows / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            df = rdc.ticks(symbol, start, end)
            client_rates.append(len(df) / (time.perf_counter() - t0))
            if len(df) != rows:
                raise RuntimeError(f"rdc_client read {len(df)} rows of {symbol}, the raw pages {rows}")
    raw, client = statistics.median(raw_rates), statistics.median(client_rates)
    return {"symbol": symbol, "day_rows": rows, "reps": reps, "raw_pages_rows_per_s": round(raw),
            "dataframe_rows_per_s": round(client), "client_over_raw": round(client / raw, 2) if raw else 0.0,
            "raw_runs_rows_per_s": [round(r) for r in raw_rates],
            "dataframe_runs_rows_per_s": [round(r) for r in client_rates]}
