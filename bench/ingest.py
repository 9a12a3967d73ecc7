"""Ingest: messages or rows per second through five paths, one after the other in one run, each
in a process of its own beside the simulator and PostgreSQL:

    collector      `python -m collector_ecs` end to end (simulator -> WebSocket -> async_rithmic
                   session with the fast path -> COPY writer -> commit), counted in the database
    stock          stock async_rithmic callbacks building the same rows into the same BatchWriter
    raw_decode     the collector's receive path with a sink that only decodes (no writer)
    raw_copy       copy_records_to_table of the decoded rows into the migrated schema
    seed_style     the old design: one INSERT per row, autocommit, six secondary indexes and two
                   per-row triggers per table (bench/seed_schema.sql)

The simulator runs at --rate 0 (as fast as the client reads), so each path runs at its own limit.
Also: freshness (commit time - exchange time) with the collector fed 20,000 messages/s, and the
simulator's own send rate.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from collector_ecs.parsing import COLUMNS
from rdc_common.clock import default_clock
from rdc_common.products import PRODUCTS, front_month
from simulator.testing import SimulatorProcess

from .procs import Proc, child_env
from .stack import BenchStack, cpu_seconds

UTC = dt.UTC
SEED_SCHEMA = Path(__file__).with_name("seed_schema.sql")
ROWS_COMMITTED = "SELECT coalesce(sum(row_count), 0)::bigint FROM ingest_counters"


def contracts(products, today: dt.date | None = None) -> list[tuple[str, str]]:
    today = today or default_clock().today()
    return [(c.symbol, c.exchange) for c in (front_month(PRODUCTS[p], today) for p in products)]


def symbols_arg(pairs) -> str:
    return ",".join(f"{s}:{e}" for s, e in pairs)


class Counter:
    """Committed rows as the database sees them (the writer's counters, same transaction as the rows)."""

    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(url))

    def rows(self) -> int:
        return self.loop.run_until_complete(self.conn.fetchval(ROWS_COMMITTED))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def wait_rows(self, minimum: int, timeout: float, proc: Proc) -> None:
        deadline = time.monotonic() + timeout
        while self.rows() < minimum:
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} committed no rows; its log {proc.log} ends with:\n"
                                   f"{proc.output()[-3000:]}")
            time.sleep(0.1)


def _window(counter: Counter, warmup: float, seconds: float, pids: dict[str, list[int]]) -> dict:
    """Committed rows/s over `seconds` after `warmup`, with each process group's CPU share."""
    time.sleep(warmup)
    cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
    r0, t0 = counter.rows(), time.monotonic()
    time.sleep(seconds)
    r1, t1 = counter.rows(), time.monotonic()
    cpu1 = {k: cpu_seconds(v) for k, v in pids.items()}
    wall = t1 - t0
    return {"msgs_per_s": round((r1 - r0) / wall), "rows": r1 - r0, "seconds": round(wall, 2),
            "cpu_share": {k: round((cpu1[k] - cpu0[k]) / wall, 2) for k in pids}}


def collector_env(sim_url: str, database_url: str, redis_url: str, workdir: Path, products) -> dict[str, str]:
    """The collector as deployed: its defaults for batch size, flush interval and queue bound."""
    return child_env(
        RITHMIC_URL=sim_url, RITHMIC_USER="demo", RITHMIC_PASSWORD="demo",
        RITHMIC_SYSTEM_NAME="Rithmic Paper Trading", DATABASE_URL=database_url, REDIS_URL=redis_url,
        SYMBOLS=",".join(products), RDC_SPOOL_DIR=str(workdir / "spool"), HEALTH_FILE=str(workdir / "health.json"),
        CONFIG_FILE=str(workdir / "no-config.json"), COLLECTOR_ID="bench", LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )


class Profiler:
    """py-spy sampling the collector for the measured window, when py-spy is installed."""

    def __init__(self, pid: int, out: Path):
        self.pid = pid
        self.out = out
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

    def available(self) -> bool:
        return Path(self.binary).exists()

    def start(self, seconds: float) -> None:
        self.proc = subprocess.Popen([self.binary, "record", "--pid", str(self.pid), "--duration", str(int(seconds)),
                                      "--rate", "200", "--format", "raw", "--output", str(self.out), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, top: int = 25) -> dict | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.out.exists():
            return None
        return summarise_profile(self.out.read_text(), top)


def _function(frame: str) -> str:
    """'decode_book (collector_ecs/parsing.py:114)' -> 'decode_book (collector_ecs/parsing.py)'."""
    name, sep, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if sep else frame


def _file(frame: str) -> str:
    return frame.rpartition(" (")[2].rsplit(":", 1)[0].rstrip(")") or frame


def summarise_profile(collapsed: str, top: int = 25) -> dict:
    """Shares of py-spy's (non-idle) samples from its collapsed-stack output: self time per
    function and per source file, and inclusive time per function."""
    self_fn: collections.Counter = collections.Counter()
    self_file: collections.Counter = collections.Counter()
    incl_fn: collections.Counter = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_fn[_function(frames[-1])] += n
        self_file[_file(frames[-1])] += n
        for f in {_function(f) for f in frames}:
            incl_fn[f] += n
    if not total:
        return {"samples": 0}

    def share(c):
        return [[frame, round(n / total, 4)] for frame, n in c.most_common(top)]

    return {"samples": total, "self": share(self_fn), "self_by_file": share(self_file), "inclusive": share(incl_fn)}


def run_collector(stack: BenchStack, sizes, products, workdir: Path, profile: bool, log,
                  live_snapshots: bool = True, name: str = "collector") -> dict:
    url = stack.database(f"rdc_bench_{name}")
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    counter = Counter(url)
    env = collector_env(sim_url="", database_url=url, redis_url=stack.redis_url, workdir=d, products=products)
    try:
        with SimulatorProcess(seed=1, rate=0, heartbeat_interval=3600) as sim:
            env.update(RITHMIC_URL=sim.url, LIVE_SNAPSHOTS="1" if live_snapshots else "0")
            proc = Proc.python(name, ["-m", "collector_ecs"], d / "collector.log", env=env).start()
            try:
                counter.wait_rows(1, 90, proc)
                prof = Profiler(proc.pid, workdir / "profile-collector.txt") if profile else None
                if prof is not None and not prof.available():
                    log("profile: py-spy is not installed (pip install py-spy); no profile taken")
                    prof = None
                out = _window(counter, sizes.ingest_warmup_s, sizes.ingest_window_s,
                              {"collector": [proc.pid], "simulator": [sim.pid], "postgres": stack.postgres_pids()})
                if prof is not None:
                    # After the measured window, so sampling does not perturb the figure.
                    prof.start(sizes.ingest_window_s)
                    time.sleep(sizes.ingest_window_s)
                    out["profile"] = prof.finish()
            finally:
                # Killed, not stopped: its drain would commit the queued rows, which nobody measures.
                proc.kill()
        out["mix"] = asyncio.run(_mix(url))
        return out
    finally:
        counter.close()
        stack.drop(url)


def run_live_cost(stack: BenchStack, sizes, products, workdir: Path, log) -> dict:
    """The collector's ingest rate with the console's live snapshots off, then on, `sizes.live_pairs`
    times, in the same run: the cost of keeping each symbol's book and trades and publishing them."""
    off, on = [], []
    for i in range(sizes.live_pairs):
        for live, runs in ((False, off), (True, on)):
            out = run_collector(stack, sizes, products, workdir, False, log, live_snapshots=live,
                                name=f"collector_live_{'on' if live else 'off'}_{i}")
            runs.append(out["msgs_per_s"])
            log(f"  live snapshots {'on ' if live else 'off'}: {out['msgs_per_s']:,} msgs/s")
    off_rate, on_rate = sorted(off)[len(off) // 2], sorted(on)[len(on) // 2]
    return {"off_msgs_per_s": off_rate, "on_msgs_per_s": on_rate,
            "drop_pct": round(100 * (off_rate - on_rate) / off_rate, 1) if off_rate else 0.0,
            "runs_off": off, "runs_on": on}


async def _mix(url: str) -> dict:
    conn = await asyncpg.connect(url)
    try:
        rows = {r["table_name"]: r["n"] for r in
                await conn.fetch("SELECT table_name, sum(row_count)::bigint AS n FROM ingest_counters GROUP BY 1")}
    finally:
        await conn.close()
    total = sum(rows.values()) or 1
    return {t: round(rows.get(t, 0) / total, 3) for t in COLUMNS}


def run_stock(stack: BenchStack, sizes, products, workdir: Path, log) -> dict:
    url = stack.database("rdc_bench_stock")
    d = workdir / "stock"
    d.mkdir(parents=True, exist_ok=True)
    counter = Counter(url)
    try:
        with SimulatorProcess(seed=1, rate=0, heartbeat_interval=3600) as sim:
            args = ["-m", "bench.worker", "stock", "--url", sim.url, "--symbols", symbols_arg(contracts(products)),
                    "--database-url", url, "--spool", str(d / "spool")]
            proc = Proc.python("stock async_rithmic", args, d / "stock.log").start()
            try:
                proc.wait_for('"ready": true', 60)
                counter.wait_rows(1, 60, proc)
                return _window(counter, sizes.ingest_warmup_s, sizes.ingest_window_s,
                               {"stock": [proc.pid], "simulator": [sim.pid], "postgres": stack.postgres_pids()})
            finally:
                proc.kill()
    finally:
        counter.close()
        stack.drop(url)


def run_decode(sizes, products, workdir: Path, sample_file: Path, log) -> dict:
    d = workdir / "decode"
    d.mkdir(parents=True, exist_ok=True)
    with SimulatorProcess(seed=1, rate=0, heartbeat_interval=3600) as sim:
        args = ["-m", "bench.worker", "decode", "--url", sim.url, "--symbols", symbols_arg(contracts(products)),
                # Decoding has no queue to fill, so it is steady after a shorter warm-up.
                "--warmup", str(min(sizes.ingest_warmup_s, 1.5)), "--seconds", str(sizes.ingest_window_s),
                "--sample-rows", str(min(sizes.copy_rows, 200_000)), "--sample-out", str(sample_file)]
        proc = Proc.python("raw decode", args, d / "decode.log").start()
        proc.wait(timeout=sizes.ingest_warmup_s + sizes.ingest_window_s + 120)
    result = None
    for line in proc.output().splitlines():
        if line.startswith("{") and '"messages"' in line:
            result = json.loads(line)
    if result is None:
        raise RuntimeError(f"the decode worker printed no result; see {proc.log}:\n{proc.output()[-3000:]}")
    return {"msgs_per_s": round(result["messages"] / result["seconds"]), "messages": result["messages"],
            "seconds": round(result["seconds"], 2),
            "cpu_share": {"decode": round(result["cpu_s"] / result["seconds"], 2)}}


def _by_table(sample: list[tuple[str, tuple]]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {t: [] for t in COLUMNS}
    for table, row in sample:
        out[table].append(row)
    return out


async def _copy(url: str, sample: list[tuple[str, tuple]], total_rows: int, batch_size: int) -> dict:
    """copy_records_to_table, autocommit per batch, of the sample's rows (cycled) in arrival order
    cut into per-table batches as the writer cuts them."""
    conn = await asyncpg.connect(url)
    try:
        batches: list[tuple[str, list[tuple]]] = []
        buffers: dict[str, list[tuple]] = {t: [] for t in COLUMNS}
        produced = 0
        while produced < total_rows:
            for table, row in sample:
                buf = buffers[table]
                buf.append(row)
                produced += 1
                if len(buf) >= batch_size:
                    batches.append((table, buf))
                    buffers[table] = []
                if produced >= total_rows:
                    break
        batches += [(t, b) for t, b in buffers.items() if b]
        await conn.copy_records_to_table(batches[0][0], records=batches[0][1][:10], columns=COLUMNS[batches[0][0]])
        t0 = time.perf_counter()
        for table, rows in batches:
            await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
        elapsed = time.perf_counter() - t0
    finally:
        await conn.close()
    return {"rows_per_s": round(produced / elapsed), "rows": produced, "seconds": round(elapsed, 2)}


def run_copy(stack: BenchStack, sizes, sample: list, batch_size: int) -> dict:
    url = stack.database("rdc_bench_copy")
    try:
        return asyncio.run(_copy(url, sample, sizes.copy_rows, batch_size))
    finally:
        stack.drop(url)


_SEED_TABLE = {"tick_data": "seed_tick_data", "quote_data": "seed_quote_data", "level2_data": "seed_level2_data"}


# The old design stored a trade's first nine fields; its tables have no nanoseconds or gateway column.
_SEED_COLUMNS = {t: c[:9] if t == "tick_data" else c for t, c in COLUMNS.items()}


def _seed_insert(table: str) -> str:
    cols = _SEED_COLUMNS[table]
    names = ", ".join(f'"{c}"' for c in cols)
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    return f"INSERT INTO {_SEED_TABLE[table]} ({names}) VALUES ({params})"  # noqa: S608 - fixed names


async def _seed(url: str, sample: list[tuple[str, tuple]], seconds: float) -> dict:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SEED_SCHEMA.read_text())
        statements = {t: _seed_insert(t) for t in COLUMNS}
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            for table, row in sample:
                # autocommit: one transaction per row
                await conn.execute(statements[table], *row[: len(_SEED_COLUMNS[table])])
                n += 1
                if n % 64 == 0 and time.perf_counter() > deadline:
                    break
            else:
                continue
            break
        elapsed = time.perf_counter() - t0
    finally:
        await conn.close()
    return {"rows_per_s": round(n / elapsed), "rows": n, "seconds": round(elapsed, 2)}


def run_seed(stack: BenchStack, sizes, sample: list) -> dict:
    url = stack.database("rdc_bench_seed")
    try:
        return asyncio.run(_seed(url, sample, sizes.seed_window_s))
    finally:
        stack.drop(url)


def run_freshness(stack: BenchStack, sizes, products, workdir: Path, log) -> dict:
    url = stack.database("rdc_bench_fresh")
    d = workdir / "fresh"
    d.mkdir(parents=True, exist_ok=True)
    out_file = d / "fresh.json"
    try:
        with SimulatorProcess(seed=1, rate=sizes.fresh_rate_per_symbol, heartbeat_interval=3600) as sim:
            args = ["-m", "bench.worker", "fresh", "--warmup", str(sizes.fresh_warmup_s), "--out", str(out_file)]
            proc = Proc.python("collector (freshness)", args, d / "fresh.log",
                               env=collector_env(sim.url, url, stack.redis_url, d, products)).start()
            try:
                proc.wait_for('"ready": true', 90)
                time.sleep(sizes.fresh_warmup_s + sizes.fresh_window_s)
            finally:
                code = proc.stop(timeout=30)
        if code != 0 or not out_file.exists():
            raise RuntimeError(f"the freshness run failed (exit {code}); see {proc.log}:\n{proc.output()[-3000:]}")
        r = json.loads(out_file.read_text())
    finally:
        stack.drop(url)
    span = (r["last_commit"] - r["first_commit"]) if r["first_commit"] else 0
    lags = r["lags_s"]
    return {"p50": round(lags["p50"] * 1000, 1), "p90": round(lags["p90"] * 1000, 1),
            "p99": round(lags["p99"] * 1000, 1), "max": round(lags["max"] * 1000, 1),
            "rows": r["rows"], "msgs_per_s": round(r["rows"] / span) if span else 0,
            "rate_asked_msgs_per_s": sizes.fresh_rate_per_symbol * len(products),
            # Why: how long each batch's transaction took, and how big batches were.
            "batch_write_ms": r["batch_ms"], "rows_per_batch": r["rows_per_batch"]}


def run_send(sizes, products) -> dict:
    """The simulator's own figure (issue 3): `python -m simulator.bench_send` for the same symbols.

    At --rate 0 the simulator never sends an event before its time (a nominal 50,000 msgs/s per
    symbol, 200,000 for four), so a reader that keeps up measures that pace, not the simulator.
    A backlog (the reader waits first) makes the measured window a catch-up at full speed on
    one core: the figure that says whether the simulator could ever be the bottleneck.
    """
    backlog = 1.5 * sizes.send_seconds + 2  # catching up outlasts the window
    argv = [sys.executable, "-m", "simulator.bench_send", "--symbols", str(len(products)),
            "--seconds", str(sizes.send_seconds), "--backlog", str(backlog)]
    res = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=300, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"simulator.bench_send failed:\n{res.stderr[-3000:]}")
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    return {"send_msgs_per_s": doc["messages_per_second"], "cpu_share": doc["simulator_cpu_share"],
            "msgs_per_cpu_s": doc["messages_per_cpu_second"], "symbols": doc["symbols"]}


def run_decode_cost(sizes, products) -> dict:
    """Decoding cost per message before and after issue 20, same frames, one process
    (`python -m bench.decode_cost`); see that module for what "before" is."""
    pairs = contracts(products)
    argv = [sys.executable, "-m", "bench.decode_cost", "--frames", str(sizes.decode_frames),
            "--rounds", str(sizes.decode_rounds), "--symbols", symbols_arg(pairs)]
    res = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=600, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"bench.decode_cost failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def load_sample(path: Path) -> list:
    with open(path, "rb") as fh:
        return pickle.load(fh)
