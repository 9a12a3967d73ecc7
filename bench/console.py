"""The web console's budgets, measured (never asserted): on the bench's PostgreSQL and Redis, the
simulator at `make run`'s rate, the collector with live snapshots on, `chalice local` (as `make run`
starts it) and NGINX from the repository's template in front of it, then

    first_render_ms   navigation start to the page's own `rdc-first-data` mark (candles drawn and the
                      ladder filled), in headless Chromium: cold (a fresh browser context, nothing
                      cached) and warm (a reload, revalidating by ETag)
    transfer          JavaScript and CSS bytes the cold load moved over the wire (resource timing's
                      transferSize, NGINX compressing as configured), and their size uncompressed
    live              GET /api/live/<symbol> through NGINX on one keep-alive connection

The other console figure, the collector's ingest rate with snapshots on vs off, is in bench/ingest.py
(`run_live_cost`), beside the other ingest runs.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from devstack.services import chromium_binary
from simulator.testing import SimulatorProcess

from .api import ApiServers
from .ingest import collector_env
from .procs import Proc
from .stats import quantile, summary_ms

# Messages per second per symbol: `make run`'s simulator (devstack.plan), the market a user of the
# console watches. The console's figures are about the page and the API, not a collector at its limit
# (the ingest runs measure that), which on two cores would starve the servers being measured.
MAKE_RUN_RATE = 200

# Resource timing of every console asset of the page, and its own first-data mark.
PAGE_FIGURES = """() => {
  const mark = performance.getEntriesByName("rdc-first-data")[0];
  const asset = /\\/console\\/[^?]+\\.(m?js|css)(\\?|$)/;
  const assets = performance.getEntriesByType("resource").filter((e) => asset.test(e.name));
  return {
    first_data_ms: mark ? mark.startTime : null,
    transfer_bytes: assets.reduce((n, e) => n + e.transferSize, 0),
    encoded_bytes: assets.reduce((n, e) => n + e.encodedBodySize, 0),
    decoded_bytes: assets.reduce((n, e) => n + e.decodedBodySize, 0),
    files: assets.length,
  };
}"""


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait_live(port: int, symbol: str, timeout: float, proc: Proc) -> None:
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while time.monotonic() < deadline:
            status, body = _get(conn, f"/api/live/{symbol}")
            if status == 200 and b'"bids":[{' in body:
                return
            if proc.proc.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        conn.close()
    raise RuntimeError(f"no live snapshot of {symbol} through NGINX; the collector's log {proc.log} ends with:\n"
                       f"{proc.output()[-3000:]}")


def measure_live(port: int, symbols: list[str], n: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for i in range(min(20, n)):  # warm-up: the API's Redis client, NGINX's upstream connection
            _get(conn, f"/api/live/{symbols[i % len(symbols)]}")
        for i in range(n):
            t0 = time.perf_counter()
            status, body = _get(conn, f"/api/live/{symbols[i % len(symbols)]}")
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"/api/live answered {status}: {body[:300]!r}")
    finally:
        conn.close()
    return summary_ms(times)


def measure_page(url: str, reps: int) -> dict:
    from playwright.sync_api import sync_playwright

    cold, warm, loads = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_binary(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                           "--disable-background-networking", "--disable-component-update"])
        try:
            for _ in range(reps):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                try:
                    page = context.new_page()
                    page.goto(url + "/")
                    page.wait_for_selector("body[data-ready='true']", timeout=60_000)
                    figures = page.evaluate(PAGE_FIGURES)
                    cold.append(figures["first_data_ms"])
                    loads.append(figures)
                    page.reload()
                    page.wait_for_selector("body[data-ready='true']", timeout=60_000)
                    warm.append(page.evaluate(PAGE_FIGURES)["first_data_ms"])
                finally:
                    context.close()
        finally:
            browser.close()
    cold.sort()
    warm.sort()
    first = loads[0]
    return {
        "first_render_ms": {"cold_p50": round(quantile(cold, 0.5)), "cold_max": round(cold[-1]),
                            "warm_p50": round(quantile(warm, 0.5)), "reps": reps},
        "transfer": {"js_css_kb": round(first["transfer_bytes"] / 1024, 1),
                     "js_css_uncompressed_kb": round(first["decoded_bytes"] / 1024, 1), "files": first["files"]},
    }


def run(stack, sizes, products, workdir: Path, log) -> dict:
    from .ingest import contracts

    url = stack.database("rdc_bench_console")
    workdir.mkdir(parents=True, exist_ok=True)
    symbols = [s for s, _ in contracts(products)]
    try:
        with SimulatorProcess(seed=1, rate=MAKE_RUN_RATE, heartbeat_interval=3600) as sim:
            collector = Proc.python("collector (console)", ["-m", "collector_ecs"], workdir / "collector.log",
                                    env=collector_env(sim.url, url, stack.redis_url, workdir, products)).start()
            servers = ApiServers(url, stack.redis_url, workdir)
            try:
                servers.start(stock=False)
                port = servers.ports["nginx"]
                for symbol in symbols:
                    wait_live(port, symbol, 90, collector)
                n = sizes.api_requests * 20
                log(f"console: /api/live through NGINX, {n} requests")
                live = measure_live(port, symbols, n)
                log(f"  p50 {live['p50_ms']} ms  p99 {live['p99_ms']} ms")
                reps = sizes.console_reps
                log(f"console: first render in Chromium, {reps} cold and warm loads")
                page = measure_page(f"http://127.0.0.1:{port}", reps)
                log(f"  cold p50 {page['first_render_ms']['cold_p50']} ms, warm p50 "
                    f"{page['first_render_ms']['warm_p50']} ms, JS + CSS {page['transfer']['js_css_kb']} KB "
                    f"({page['transfer']['js_css_uncompressed_kb']} KB uncompressed)")
            finally:
                servers.stop()
                collector.kill()
    finally:
        stack.drop(url)
    return {**page, "live_p50_ms": live["p50_ms"], "live_p99_ms": live["p99_ms"], "live": live,
            "sim_rate_msgs_per_s": MAKE_RUN_RATE * len(products)}
