"""`python -m bench [--quick | --tiny]`: every benchmark in one run, side by side, on private
PostgreSQL, Redis, simulator, collector, chalice local and NGINX processes on loopback.

Results: bench/results/latest.{json,md} (full), quick.{json,md} (--quick or QUICK=1), or
--out DIR. A full run first waits (up to 15 minutes) for the machine to be idle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from rdc_common.clock import pin_environment
from rdc_common.products import DEFAULT_PRODUCTS

from . import api as api_bench
from . import archive as archive_bench
from . import console, ingest, report
from .config import MODES
from .stack import BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def load_1m() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_idle(threshold: float, timeout_s: float, interval_s: float, log) -> float:
    """Poll the 1-minute load until it is below `threshold` or `timeout_s` passes; returns the last load."""
    deadline = time.monotonic() + timeout_s
    load = load_1m()
    while load >= threshold and time.monotonic() < deadline:
        log(f"waiting for an idle machine: 1-minute load {load:.2f} >= {threshold}")
        time.sleep(interval_s)
        load = load_1m()
    if load >= threshold:
        log(f"machine still busy after {timeout_s / 60:.0f} min (load {load:.2f}); measuring anyway")
    return load


def machine(mode: str) -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True)
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(), "mode": mode,
            "git_commit": (git.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else ""),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def run(sizes, workdir: Path, profile: bool, log) -> dict:
    started = time.monotonic()
    doc: dict = {"machine": machine(sizes.mode)}
    loads = [load_1m()]
    doc["machine"]["load_1m_start"] = loads[0]
    stack = BenchStack(workdir / "services")
    stack.start()
    try:
        doc["machine"]["postgres"] = _pg_version(stack)

        log("simulator: send rate on one core")
        sim = ingest.run_send(sizes, DEFAULT_PRODUCTS)
        loads.append(load_1m())
        log(f"  {sim['send_msgs_per_s']:,} msgs/s")

        log("ingest: collector end to end")
        col = ingest.run_collector(stack, sizes, DEFAULT_PRODUCTS, workdir, profile, log)
        loads.append(load_1m())
        log(f"  {col['msgs_per_s']:,} msgs/s  cpu {col['cpu_share']}")

        log(f"ingest: collector with the console's live snapshots off, then on ({sizes.live_pairs} pair(s))")
        live_cost = ingest.run_live_cost(stack, sizes, DEFAULT_PRODUCTS, workdir, log)
        loads.append(load_1m())
        log(f"  ingest drop with snapshots on: {live_cost['drop_pct']} %")

        log("ingest: (a) stock async_rithmic")
        stock = ingest.run_stock(stack, sizes, DEFAULT_PRODUCTS, workdir, log)
        loads.append(load_1m())
        log(f"  {stock['msgs_per_s']:,} msgs/s  cpu {stock['cpu_share']}")

        log("ingest: (b) bare decode")
        sample_file = workdir / "decoded-rows.pickle"
        dec = ingest.run_decode(sizes, DEFAULT_PRODUCTS, workdir, sample_file, log)
        loads.append(load_1m())
        log(f"  {dec['msgs_per_s']:,} msgs/s")
        sample = ingest.load_sample(sample_file)

        log("ingest: decoding cost per message, before and after trades kept both clocks (issue 20)")
        cost = ingest.run_decode_cost(sizes, DEFAULT_PRODUCTS)
        loads.append(load_1m())
        log(f"  Ingest.handle {cost['handle_ns_before']:,} -> {cost['handle_ns_after']:,} ns/msg "
            f"({cost['handle_change_pct']:+}%), decode_trade {cost['trade_ns_before']:,} -> "
            f"{cost['trade_ns_after']:,} ns/trade ({cost['trade_change_pct']:+}%)")

        from collector_ecs.config import Settings
        batch_size = Settings.__dataclass_fields__["batch_size"].default
        log("ingest: (c) raw COPY")
        copy = ingest.run_copy(stack, sizes, sample, batch_size)
        loads.append(load_1m())
        log(f"  {copy['rows_per_s']:,} rows/s")

        log("ingest: (d) seed-style INSERT per row")
        seed = ingest.run_seed(stack, sizes, sample)
        loads.append(load_1m())
        log(f"  {seed['rows_per_s']:,} rows/s")

        c = col["msgs_per_s"]
        doc["simulator"] = {**sim, "send_over_collector": _ratio(sim["send_msgs_per_s"], c)}
        doc["decode_cost"] = cost
        doc["ingest"] = {
            "collector_msgs_per_s": c,
            "stock_async_rithmic_msgs_per_s": stock["msgs_per_s"],
            "raw_decode_msgs_per_s": dec["msgs_per_s"],
            "raw_copy_rows_per_s": copy["rows_per_s"],
            "seed_style_rows_per_s": seed["rows_per_s"],
            "collector_over_stock": _ratio(c, stock["msgs_per_s"]),
            "collector_over_raw_decode": _ratio(c, dec["msgs_per_s"]),
            "collector_over_raw_copy": _ratio(c, copy["rows_per_s"]),
            "collector_over_seed_style": _ratio(c, seed["rows_per_s"]),
            "live_snapshots": live_cost,
            "collector": col, "stock": stock, "raw_decode": dec, "raw_copy": copy, "seed_style": seed,
        }

        log(f"freshness: collector at {sizes.fresh_rate_per_symbol * len(DEFAULT_PRODUCTS):,} msgs/s")
        doc["freshness_ms"] = ingest.run_freshness(stack, sizes, DEFAULT_PRODUCTS, workdir, log)
        loads.append(load_1m())
        fr = doc["freshness_ms"]
        log(f"  p50 {fr['p50']} ms  p99 {fr['p99']} ms at {fr['msgs_per_s']:,} msgs/s")

        doc["console"] = console.run(stack, sizes, DEFAULT_PRODUCTS, workdir / "console", log)
        loads.append(load_1m())

        doc["api"], doc["scale"] = api_bench.run(stack, sizes, DEFAULT_PRODUCTS, workdir / "api", log)
        loads.append(load_1m())

        doc["archive"] = archive_bench.run(stack, sizes, DEFAULT_PRODUCTS, workdir, log)
        loads.append(load_1m())
        ar = doc["archive"]
        log(f"  {ar['rows']:,} rows archived at {ar['rows_per_s']:,} rows/s; bytes per trade/quote/book update "
            f"{ar['bytes_per_row']['trade']}/{ar['bytes_per_row']['quote']}/{ar['bytes_per_row']['book_update']}")
    finally:
        stack.stop()
    doc["machine"]["load_1m_end"] = loads[-1]
    doc["machine"]["load_1m_max"] = max(loads)
    doc["machine"]["duration_s"] = round(time.monotonic() - started, 1)
    doc["targets"] = report.targets(doc)
    return doc


def _pg_version(stack: BenchStack) -> str:
    import asyncio

    import asyncpg

    async def get() -> str:
        conn = await asyncpg.connect(stack.admin_url)
        try:
            return await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()

    return asyncio.run(get()).split()[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short run (< 60 s), also QUICK=1 in the environment")
    size.add_argument("--tiny", action="store_true", help="smallest run, for the test suite")
    p.add_argument("--out", type=Path, default=None, help="directory for the results (default bench/results)")
    p.add_argument("--profile", action="store_true", help="sample the collector with py-spy during its window")
    p.add_argument("--no-wait", action="store_true", help="full run: do not wait for an idle machine")
    p.add_argument("--workdir", type=Path, default=None, help="keep logs and data here instead of a temp dir")
    args = p.parse_args(argv)
    quick_env = os.environ.get("QUICK", "").strip().lower() not in ("", "0", "false", "no")
    mode = "tiny" if args.tiny else "quick" if (args.quick or quick_env) else "full"
    sizes = MODES[mode]

    def log(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if mode == "full" and not args.no_wait:
        wait_idle(1.0, 15 * 60, 30, log)
    # Every process the bench starts shares one clock pinned to an open market (rdc_common.clock):
    # on a real weekend the simulator would send nothing, and what we measure must not depend on the day.
    pin_environment(os.environ)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rdc-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)
        doc = run(sizes, workdir, args.profile, log)
    missing = report.missing_keys(doc)
    out = args.out or RESULTS
    stem = {"full": "latest", "quick": "quick", "tiny": "tiny"}[mode]
    report.write(doc, out / f"{stem}.json", out / f"{stem}.md", update_readme=(mode == "full" and args.out is None))
    log(f"results: {out / (stem + '.json')} and {out / (stem + '.md')}")
    print(report.markdown(doc))
    if missing:
        print(f"bench: the results lack these keys: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
