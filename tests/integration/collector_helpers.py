"""Shared by the collector's integration and fault tests: settings for a collector pointed
at a test simulator, database counts, and the stored-equals-sent check."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from collector_ecs.config import load_settings
from collector_ecs.parsing import TICK_COLUMNS, decode_trade, exchange_time
from collector_ecs.rithmic_internals import make_client
from rdc_common.clock import CLOCK_VARIABLES, ENV_ANCHOR, ENV_SPEED, ENV_START
from rdc_common.products import contract
from simulator.market import Market, RateTimeline

REPO = Path(__file__).resolve().parents[2]
TABLE_OF = {"last_trade": "tick_data", "bbo": "quote_data", "order_book": "level2_data"}


def collector_env(sim, database_url: str, redis_url: str, tmp_path: Path, **extra) -> dict[str, str]:
    env = {
        "RITHMIC_URL": sim.url, "RITHMIC_USER": "demo", "RITHMIC_PASSWORD": "demo",
        "RITHMIC_SYSTEM_NAME": "Rithmic Paper Trading", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "SYMBOLS": "ES,CL", "RDC_SPOOL_DIR": str(tmp_path / "spool"), "HEALTH_FILE": str(tmp_path / "health.json"),
        "FLUSH_INTERVAL_MS": "50", "CONFIG_FILE": str(tmp_path / "none.json"), "COLLECTOR_ID": "test-collector",
        "MAX_RECONNECT_DELAY_S": "1", "LOG_LEVEL": "INFO",
    }
    # The suite's clock (tests/conftest.py), which the simulator runs on too.
    env.update({k: os.environ[k] for k in CLOCK_VARIABLES if k in os.environ})
    if getattr(sim, "cert_file", None) and sim.url.startswith("wss://"):
        env["RITHMIC_CA_FILE"] = str(sim.cert_file)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def clock_env(start: str, speed: float, lead_s: float = 3.0) -> dict[str, str]:
    """RDC_CLOCK_* for one simulator and its collector (the same three for both): simulated time
    reaches `start` `lead_s` real seconds from now, so both processes are up before it."""
    return {ENV_START: start, ENV_SPEED: repr(float(speed)), ENV_ANCHOR: repr(time.time() + lead_s)}


async def history_trades(sim, symbol: str, exchange: str, start: dt.datetime, end: dt.datetime) -> set[dt.datetime]:
    """Exchange times of the trades the market produced in [start, end], from the simulator's history plant."""
    from async_rithmic.enums import SysInfraType

    client = make_client(user="demo", password="demo", system_name="Rithmic Paper Trading", app_name="t",
                         app_version="1", url=sim.url, ca_file=None, max_reconnect_delay=1)
    await client.connect(plants=[SysInfraType.HISTORY_PLANT])
    try:
        ticks = await client.get_historical_tick_data(symbol, exchange, start, end + dt.timedelta(seconds=1))
    finally:
        await client.disconnect()
    times = (exchange_time(t["data_bar_ssboe"][0], t.get("data_bar_usecs", [0])[0]) for t in ticks or [])
    return {ts for ts in times if start <= ts <= end}


async def stored_trade_times(database_url: str, symbol: str, start: dt.datetime, end: dt.datetime) -> set[dt.datetime]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch('SELECT "timestamp" FROM tick_data WHERE symbol = $1 AND "timestamp" BETWEEN $2 AND $3',
                                symbol, start, end)
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def query(database_url: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def settings_for(env: dict[str, str]):
    return load_settings(env)


async def counts(database_url: str, live_only: bool = False) -> dict[str, dict[str, int]]:
    """{symbol: {table: rows}} as stored."""
    conn = await asyncpg.connect(database_url)
    try:
        out: dict[str, dict[str, int]] = {}
        for table in ("tick_data", "quote_data", "level2_data"):
            where = " WHERE NOT backfilled" if live_only and table == "tick_data" else ""
            for r in await conn.fetch(f"SELECT symbol, count(*) AS n FROM {table}{where} GROUP BY symbol"):  # noqa: S608 - fixed names
                out.setdefault(r["symbol"], {})[table] = r["n"]
        return out
    finally:
        await conn.close()


def sent_by_table(stats: dict) -> dict[str, dict[str, int]]:
    return {sym: {TABLE_OF[k]: v for k, v in per.items() if k in TABLE_OF} for sym, per in stats["sent"].items()}


async def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


class CollectorProcess:
    """`python -m collector_ecs` as a real child process (for signals)."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RITHMIC_", "DB_"))}
        full_env.update(self.env)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen([sys.executable, "-m", "collector_ecs"], cwd=REPO, env=full_env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def signal(self, sig=signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _payloads(blob: bytes) -> list[bytes]:
    """The R|Protocol messages (protobuf, length prefix dropped) of a run of server WebSocket frames."""
    out, i = [], 0
    while i < len(blob):
        length, head = blob[i + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(blob[i + 2 : i + 4], "big"), 4
        out.append(blob[i + head + 4 : i + head + length])
        i += head + length
    return out


def rates_from(initial: int, changes: dict[int, int] | None = None) -> RateTimeline:
    """The simulator's --rate and the changes made through its control API ({effective second: rate})."""
    timeline = RateTimeline(initial)
    for second, rate in sorted((changes or {}).items()):
        timeline.change(rate, second - 1)  # a change applies from the second after the one it was made in
    return timeline


def live_rows(seed: int, rate: int | RateTimeline, symbol: str, seconds) -> dict:
    """{timestamp: tick_data row} of every trade the simulator's market made in `seconds`, as the
    collector stores it when it receives it live: the simulator's own LastTrade frames (the market is a
    pure function of seed, symbol, second and rate) through the collector's own decode_trade.
    received_at (field 7) is None: it is the collector's clock, not the market's."""
    market = Market(seed=seed, rates=rate if isinstance(rate, RateTimeline) else RateTimeline(rate))
    inst = market.instrument(contract(symbol, dt.date(2026, 11, 24)))
    out = {}
    for second in sorted(set(seconds)):
        tape = market.tape(inst, second, cache=False).complete()
        for body in _payloads(tape.frames(1, 0, len(tape))):
            row = decode_trade(body, None)
            out[row[0]] = row
    return out


async def stored_trades(database_url: str, symbol: str) -> list[tuple]:
    """tick_data rows of `symbol` laid out as the collector writes them, in (timestamp, id) order."""
    conn = await asyncpg.connect(database_url)
    try:
        names = ", ".join(f'"{c}"' for c in TICK_COLUMNS)
        rows = await conn.fetch(f'SELECT {names} FROM tick_data WHERE symbol = $1 ORDER BY "timestamp", id',  # noqa: S608
                                symbol)
        return [tuple(r) for r in rows]
    finally:
        await conn.close()
