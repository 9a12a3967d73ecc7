"""API latency: /api/ticks?limit=1000, /api/bars?interval=1m over a day, /api/book?at= and
/api/stats, each through four paths over the same requests (so the same rows):

    raw            the API's own SQL on a warm asyncpg connection + json.dumps of the rows
    in_process     the Lambda handler, app(event, context), in a process of its own
    chalice        HTTP to `chalice local` as `make run` starts it (keep-alive)
    nginx          HTTP to NGINX (the repository's template) in front of that
    chalice_stock  the same two with `chalice local` as Chalice ships it (Nagle's algorithm on),
    nginx_stock    to show the 40 ms delayed-ACK stall that `make run` now avoids

then the same again as the store grows to each scale tier, with bytes on disk per row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import random
import sys
import time
from pathlib import Path

from devstack.plan import make_plan
from devstack.services import Nginx, free_port, wait_port
from rdc_common.products import PRODUCTS, front_month

from . import client as client_bench
from . import scale
from .procs import Proc, child_env
from .stats import summary_ms

REPO = Path(__file__).resolve().parent.parent
UTC = dt.UTC
DAY = dt.timedelta(days=1)
# Rough prices, only so the stored data looks like each product.
BASE_PRICES = {"ES": 6000.0, "NQ": 21000.0, "CL": 60.0, "GC": 2600.0}
ENDPOINTS = ("ticks_1000", "bars_1m_day", "book_at", "stats")
PATHS = ("raw", "in_process", "chalice", "nginx", "chalice_stock", "nginx_stock")
HTTP_PATHS = PATHS[2:]


def instruments(products, today: dt.date) -> tuple[scale.Instrument, ...]:
    out = []
    for code in products:
        c = front_month(PRODUCTS[code], today)
        out.append(scale.Instrument(c.symbol, c.exchange, BASE_PRICES.get(code, 100.0)))
    return tuple(out)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def requests_for(store: scale.Store, n: int, seed: int = 7) -> dict[str, list[dict]]:
    """n requests per endpoint over the most recent stored day, the same for every path."""
    rnd = random.Random(seed)
    syms = [i.symbol for i in store.instruments]
    end = store.end
    out: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
    for _ in range(n):
        s = rnd.choice(syms)
        out["ticks_1000"].append({"path": f"/api/ticks/{s}?limit=1000", "raw": ["ticks", s, 1000]})
        # A day of 1-minute bars ending somewhere in the last six hours of the store.
        b_end = (end - dt.timedelta(seconds=rnd.randrange(0, 6 * 3600))).replace(microsecond=0)
        b_start = b_end - DAY
        out["bars_1m_day"].append({"path": f"/api/bars/{s}?interval=1m&start={_iso(b_start)}&end={_iso(b_end)}",
                                   "raw": ["bars", s, b_start.isoformat(), b_end.isoformat()]})
        # The book at a random instant of the last day, after its first hourly snapshot.
        at = end - dt.timedelta(seconds=rnd.uniform(0, 23 * 3600))
        out["book_at"].append({"path": f"/api/book/{s}?at={_iso(at)}", "raw": ["book", s, at.isoformat()]})
        out["stats"].append({"path": "/api/stats", "raw": ["stats"]})
    return out


class ApiServers:
    """`chalice local` with NGINX in front, started as `make run` starts them (the command comes
    from devstack's plan); and the same pair with `chalice local` as Chalice ships it, whose
    responses stall on Nagle's algorithm, to show what that costs."""

    def __init__(self, database_url: str, redis_url: str, workdir: Path):
        self.database_url = database_url
        self.redis_url = redis_url
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.nginxes: list[Nginx] = []
        self.ports: dict[str, int] = {}

    def _chalice(self, name: str, argv_for_port) -> int:
        port = free_port()
        env = child_env(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, PYTHONUNBUFFERED="1")
        proc = Proc(name, argv_for_port(port), self.workdir / f"{name}.log", env=env,
                    cwd=REPO / "api_chalice").start()
        self.procs.append(proc)
        wait_port(port, 60, proc.proc, name)
        return port

    def _make_run_argv(self, port: int) -> list[str]:
        plan = make_plan({"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "RDC_API_PORT": str(port),
                          "RDC_LOCAL_DIR": str(self.workdir / "devstack")}, REPO, python=sys.executable)
        return plan.commands["api"]

    @staticmethod
    def _stock_argv(port: int) -> list[str]:
        return [sys.executable, "-c", "import sys; from chalice.cli import main; sys.argv[0] = 'chalice'; "
                "sys.exit(main())", "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"]

    def _nginx(self, name: str, upstream_port: int) -> int:
        # The rate limit is the template's own mechanism, raised so that it never answers 429 here.
        nginx = Nginx(confdir=self.workdir / name, port=free_port(), upstream=f"127.0.0.1:{upstream_port}",
                      logdir=self.workdir / f"{name}-logs", rate_limit="100000r/s", burst=100000,
                      die_with_parent=True)
        self.nginxes.append(nginx)
        nginx.start()
        return nginx.port

    def start(self, stock: bool = True) -> None:
        self.ports["chalice"] = self._chalice("chalice", self._make_run_argv)
        self.ports["nginx"] = self._nginx("nginx", self.ports["chalice"])
        if not stock:
            return
        self.ports["chalice_stock"] = self._chalice("chalice_stock", self._stock_argv)
        self.ports["nginx_stock"] = self._nginx("nginx_stock", self.ports["chalice_stock"])

    def stop(self) -> None:
        for nginx in self.nginxes:
            nginx.stop()
        for proc in self.procs:
            proc.stop()


def _http_measure(port: int, requests: dict[str, list[dict]], warmup: int) -> dict:
    out = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for name, reqs in requests.items():
            def get(path: str) -> None:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {path} on port {port}: {resp.status} {body[:300]!r}")

            for req in reqs[:warmup]:
                get(req["path"])
            times = []
            for req in reqs:
                t0 = time.perf_counter()
                get(req["path"])
                times.append(time.perf_counter() - t0)
            out[name] = summary_ms(times)
    finally:
        conn.close()
    return out


def measure(store: scale.Store, servers: ApiServers, n: int, workdir: Path, tag: str) -> dict:
    """{endpoint: {path: {p50_ms, p99_ms, ...}}} for n requests per endpoint and path (the same
    requests, so the same rows, on every path)."""
    requests = requests_for(store, n)
    warmup = min(5, n)
    spec = {"endpoints": requests, "database_url": servers.database_url, "redis_url": servers.redis_url,
            "warmup": warmup}
    spec_file, out_file = workdir / f"api-{tag}-spec.json", workdir / f"api-{tag}-result.json"
    spec_file.write_text(json.dumps(spec))
    worker = Proc.python(f"api worker ({tag})", ["-m", "bench.worker", "api", "--spec", str(spec_file),
                                                 "--out", str(out_file)], workdir / f"api-{tag}-worker.log").start()
    if worker.wait(timeout=1800) != 0:
        raise RuntimeError(f"the in-process API worker failed; see {worker.log}:\n{worker.output()[-3000:]}")
    inproc = json.loads(out_file.read_text())
    by_path = {"raw": inproc["raw"], "in_process": inproc["in_process"]}
    for path in HTTP_PATHS:
        by_path[path] = _http_measure(servers.ports[path], requests, warmup)
    return {endpoint: {path: by_path[path][endpoint] for path in PATHS} for endpoint in ENDPOINTS}


def flat_figures(m: dict) -> dict:
    """The headline numbers: what a user sees (through NGINX) beside the raw floor."""
    t = m["ticks_1000"]
    return {
        "ticks_1000_p50_ms": t["nginx"]["p50_ms"], "ticks_1000_p99_ms": t["nginx"]["p99_ms"],
        "raw_fetch_encode_p50_ms": t["raw"]["p50_ms"], "raw_fetch_encode_p99_ms": t["raw"]["p99_ms"],
        "nginx_over_raw_p99": round(t["nginx"]["p99_ms"] / t["raw"]["p99_ms"], 2),
        "nginx_stock_over_raw_p99": round(t["nginx_stock"]["p99_ms"] / t["raw"]["p99_ms"], 2),
        "bars_1m_day_p99_ms": m["bars_1m_day"]["nginx"]["p99_ms"],
        "book_at_p99_ms": m["book_at"]["nginx"]["p99_ms"],
        "stats_p50_ms": m["stats"]["nginx"]["p50_ms"], "stats_p99_ms": m["stats"]["nginx"]["p99_ms"],
    }


def run(stack, sizes, products, workdir: Path, log=print) -> tuple[dict, dict]:
    """The `api` and `scale` sections."""
    url = stack.database("rdc_bench_api")
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    store = scale.Store(url, instruments(products, end.date()), end, sizes.day_rows)
    log(f"api: generating one day ({sizes.day_rows:,} rows)")
    asyncio.run(scale.grow(store, sizes.day_rows))
    servers = ApiServers(url, stack.redis_url, workdir)
    servers.start()
    try:
        log(f"api: measuring {sizes.api_requests} requests per endpoint and path at {store.total_rows:,} rows")
        m = measure(store, servers, sizes.api_requests, workdir, "base")
        api = {**flat_figures(m), "rows_stored": store.total_rows, "endpoints": m}
        symbol = store.instruments[0].symbol
        log(f"api: rdc_client download of one day of {symbol} ticks, {sizes.client_reps} runs beside raw pages")
        api["client"] = client_bench.run(servers.ports["nginx"], symbol, store.end - DAY, store.end,
                                         sizes.client_reps)
        log(f"  raw pages {api['client']['raw_pages_rows_per_s']:,} rows/s, rdc_client "
            f"{api['client']['dataframe_rows_per_s']:,} rows/s ({api['client']['client_over_raw']} x) over "
            f"{api['client']['day_rows']:,} rows")
        tiers = {}
        for key, rows in sizes.tiers:
            log(f"scale {key}: growing the store to {rows:,} rows")
            took = asyncio.run(scale.grow(store, rows))
            log(f"scale {key}: {store.total_rows:,} rows stored ({took:.0f} s); measuring")
            m = measure(store, servers, sizes.scale_requests, workdir, key)
            per_row = asyncio.run(scale.bytes_per_row(url, store.rows))
            tiers[key] = {**flat_figures(m), "rows_stored": store.total_rows, "days_stored": store.days,
                          "rows_per_table": dict(store.rows), "generate_s": round(took, 1),
                          "bytes_per_row": per_row, "endpoints": m}
    finally:
        servers.stop()
        stack.drop(url)
    return api, tiers
