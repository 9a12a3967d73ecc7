"""`make run`: the whole product on this machine, as plain processes on loopback, in one command.

    python -m devstack.run [--dry-run]

Reads the environment and `.env` (the environment wins), decides what to start (`devstack.plan`),
starts it in order, prints where everything is, and on Ctrl-C / SIGTERM / SIGHUP stops everything
it started: the collector first, so it flushes into a database that is still up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.plan import (
    PORT_PURPOSE,
    STOP_ORDER,
    Plan,
    PlanError,
    describe,
    make_plan,
    mask_url,
    merge_env,
    next_archive_run,
    parse_dotenv,
)
from devstack.services import (
    MissingBinary,
    Nginx,
    Postgres,
    Redis,
    die_with_parent,
    nginx_binary,
    nginx_readable_dir,
    pg_bindir,
    port_open,
    redis_binary,
    wait_port,
)
from rdc_common.clock import with_anchor

REPO = Path(__file__).resolve().parent.parent
COLLECTOR_STOP_TIMEOUT = 15.0
CHILD_STOP_TIMEOUT = 10.0


class Stop(BaseException):
    """A signal asked the stack to stop (raised from the handler, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StartError(RuntimeError):
    """Something the stack needs could not start; the message says what to do."""


@dataclass
class Child:
    """One of our Python processes (simulator, API, collector), in its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    logfile: Path
    stop_timeout: float = CHILD_STOP_TIMEOUT
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            log.write(f"\n=== {self.name} started by devstack at {dt.datetime.now().isoformat()} ===\n".encode())
            log.flush()
            # Its own session: the terminal's Ctrl-C reaches devstack only, which then stops the
            # children in order instead of all at once.
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # leader of its own group (start_new_session)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop within {self.stop_timeout:.0f}s; killing it", flush=True)
        # Whatever is left in its group (the leader if it hung, or anything it spawned) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


class Stack:
    """Starts what the plan says, in order, and stops all of it, in STOP_ORDER."""

    def __init__(self, plan: Plan, out=sys.stdout):
        self.plan = plan
        self.out = out
        self.units: dict[str, Child | Postgres | Redis | Nginx] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- start ---------------------------------------------------------------------------

    def check_ports(self) -> None:
        busy = [(name, port) for name, port in self.plan.listening_ports().items() if port_open(port)]
        if busy:
            lines = [
                f"port {port} ({PORT_PURPOSE[name]}) is already in use: set {self.plan.port_variable(name)} "
                f"to a free port (e.g. {self.plan.port_variable(name)}={port + 1} make run), "
                f"or stop whatever listens there (is another `make run` still up?)"
                for name, port in busy
            ]
            raise StartError("\n".join(lines))

    def ensure_binaries(self) -> None:
        if self.plan.starts("postgres"):
            pg_bindir()
        if self.plan.starts("redis"):
            redis_binary()
        nginx_binary()

    def start(self) -> None:
        self.plan.logs_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        self.ensure_binaries()
        for name in self.plan.services:
            self.say(f"starting {name} ...")
            getattr(self, "_start_" + name)()

    def _start_postgres(self) -> None:
        # Registered before start() so a Ctrl-C during start-up still stops it.
        pg = self.units["postgres"] = Postgres(
            datadir=self.plan.local_dir / "pg", port=self.plan.ports["postgres"],
            logfile=self.plan.log_file("postgres"), die_with_parent=True,
        )
        pg.start()

    def _start_redis(self) -> None:
        redis_server = self.units["redis"] = Redis(
            datadir=self.plan.local_dir / "redis", port=self.plan.ports["redis"], logfile=self.plan.log_file("redis"),
            die_with_parent=True,
        )
        redis_server.start()

    def _start_migrate(self) -> None:
        from collector_ecs.migrate import apply_migrations

        if not self.plan.starts("redis"):
            self._check_redis()
        try:
            applied = asyncio.run(apply_migrations(self.plan.database_url))
        except (TimeoutError, OSError) as exc:
            raise StartError(
                f"cannot reach PostgreSQL at {mask_url(self.plan.database_url)} ({exc.__class__.__name__}: "
                f"{exc}); check DATABASE_URL, or unset it to let make run start its own"
            ) from None
        except Exception as exc:  # asyncpg's errors (auth, missing database) carry a readable message
            if exc.__class__.__module__.startswith("asyncpg"):
                raise StartError(
                    f"PostgreSQL at {mask_url(self.plan.database_url)} refused the migrations: {exc}"
                ) from None
            raise
        self.say("  schema: " + (f"applied {', '.join(applied)}" if applied else "up to date"))

    def _check_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.plan.redis_url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise StartError(
                f"cannot reach Redis at {mask_url(self.plan.redis_url)} ({exc}); check REDIS_URL, "
                f"or unset it to let make run start its own"
            ) from None
        finally:
            client.close()

    def _child(self, name: str, **kw) -> Child:
        child = self.units[name] = Child(
            name=name, argv=self.plan.commands[name], env=self.plan.envs[name], cwd=self.plan.cwds[name],
            logfile=self.plan.log_file(name), **kw,
        )
        child.start()
        return child

    def _wait_child_port(self, child: Child, port: int, timeout: float) -> None:
        try:
            wait_port(port, timeout, child.proc, child.name)
        except (RuntimeError, TimeoutError) as exc:
            raise StartError(f"{exc}; see {child.logfile}\n{tail(child.logfile)}") from None

    def _start_simulator(self) -> None:
        child = self._child("simulator")
        self._wait_child_port(child, self.plan.ports["simulator"], 30)

    def _start_api(self) -> None:
        child = self._child("api")
        self._wait_child_port(child, self.plan.ports["api"], 60)

    def _start_nginx(self) -> None:
        nginx = self.units["nginx"] = Nginx(
            confdir=self.plan.local_dir / "nginx", port=self.plan.ports["nginx"],
            upstream=f"127.0.0.1:{self.plan.ports['api']}", logdir=self.plan.logs_dir,
            rate_limit=self.plan.nginx_rate_limit, burst=self.plan.nginx_burst, die_with_parent=True,
            archive_root=nginx_readable_dir(self.plan.archive_dir) if self.plan.archive_dir else None,
        )
        nginx.start()

    def _start_collector(self) -> None:
        self._child("collector", stop_timeout=COLLECTOR_STOP_TIMEOUT)

    # --- run and stop --------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        return {name: unit.proc.pid for name, unit in self.units.items() if unit.proc is not None}

    def exited(self) -> tuple[str, int] | None:
        """The first unit whose process has ended on its own, with its exit code."""
        for name, unit in self.units.items():
            if unit.proc is not None and unit.proc.poll() is not None:
                return name, unit.proc.returncode
        return None

    def stop(self) -> None:
        for name in STOP_ORDER:
            unit = self.units.get(name)
            if unit is None or unit.proc is None:
                continue
            self.say(f"stopping {name} ...")
            try:
                unit.stop()
            except Exception as exc:  # keep stopping the rest; report this one
                self.say(f"  could not stop {name} cleanly: {exc}")
        self.units.clear()


class ArchiveSchedule:
    """Runs `python -m collector_ecs archive` once when the stack is up, then daily on the stack's clock
    just after each UTC day closes (devstack.plan.next_archive_run), one run at a time. Its output goes
    to logs/archive.log; a failed run is retried at the next time (the job is safe to run again)."""

    def __init__(self, plan: Plan, out=sys.stdout):
        self.plan = plan
        self.out = out
        self.due = plan.clock.now_dt() if plan.clock is not None else dt.datetime.now(dt.UTC)
        self.child: Child | None = None

    def poll(self) -> None:
        if self.child is not None:
            if self.child.alive():
                return
            code = self.child.proc.returncode
            if code not in (0, 3):
                print(f"  archive job exited with code {code}; see {self.plan.log_file('archive')} "
                      f"(it runs again at {self.due.isoformat(timespec='minutes')})", file=self.out, flush=True)
            self.child.proc = None
            self.child = None
        now = self.plan.clock.now_dt()
        if now < self.due:
            return
        self.due = next_archive_run(now)
        self.child = Child(name="archive", argv=self.plan.commands["archive"], env=self.plan.envs["archive"],
                           cwd=self.plan.cwds["archive"], logfile=self.plan.log_file("archive"))
        self.child.start()

    def stop(self) -> None:
        # The job may be killed at any point (it starts over what it had not finished), so Ctrl-C
        # need not wait for a long run.
        if self.child is not None:
            self.child.stop()
            self.child = None


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text)


def banner(plan: Plan, now: float) -> str:
    from rdc_common.calendar import front_contract

    url = plan.http_url
    front = plan.front_months(now)
    first = front[0] if front else "ESZ6"
    logs = plan.logs_dir
    names = [n for n in ("collector", "api", "simulator", "archive") if n in plan.commands]
    names += ["nginx-access", "nginx-error"] + [n for n in ("postgres", "redis") if plan.starts(n)]
    market = (
        "the simulator (no RITHMIC_USER set: synthetic market data)"
        if plan.simulated
        else f"Rithmic at {mask_url(plan.rithmic_url)} as {plan.rithmic_user}"
    )
    new_symbol = front_contract("YM", now).symbol
    pg_where = f"  (data in {plan.local_dir / 'pg'})" if plan.starts("postgres") else "  (yours)"
    # Never the keys themselves: the banner ends up in terminals, CI logs and screenshots.
    keys = [k for k in plan.envs["api"].get("API_KEYS", "").split(",") if k.strip()]
    if keys:
        access = f"on ({len(keys)} in API_KEYS): every request but /health needs -H 'x-api-key: <key>'"
        key = " -H 'x-api-key: <key>'"
    else:
        access = ("off: whoever reaches the URL reads the data and changes subscriptions.\n"
                  "                   Turn them on with API_KEYS=key1,key2 make run (or API_KEYS= in .env)")
        key = ""
    redis_where = f"  (data in {plan.local_dir / 'redis'})" if plan.starts("redis") else "  (yours)"
    return f"""
RithmicDataCollector is running; market data from {market}.

  API (via NGINX)  {url}
  PostgreSQL       {mask_url(plan.database_url)}{pg_where}
  Redis            {mask_url(plan.redis_url)}{redis_where}
  Symbols          {plan.symbols}  ->  {', '.join(front)}
  Clock            {clock_line(plan)}
  Archive          {plan.archive_url}  (each UTC day once it closes; `make archive` runs it now)
  Logs             {logs}/{{{','.join(names)}}}.log
  API keys         {access}

Try:
  curl {url}/health
  curl{key} {url}/api/symbols
  curl{key} '{url}/api/ticks/{first}?limit=10'
  curl{key} '{url}/api/level2/{first}?limit=5'
  curl{key} -X POST {url}/api/subscribe/{new_symbol} -H 'Content-Type: application/json' -d '{{}}'
  curl{key} {url}/api/stats
  tail -f {plan.log_file('collector')}

Ctrl-C stops everything.
"""


def clock_line(plan: Plan) -> str:
    clock = plan.clock
    now = clock.now_dt().isoformat(timespec="seconds")
    if not clock.simulated:
        return f"real time ({now}); RDC_CLOCK_START=<ISO instant> [RDC_CLOCK_SPEED=N] simulates another"
    return f"simulated: now {now}, {clock.speed:g}x real time (RDC_CLOCK_START / RDC_CLOCK_SPEED)"


def _install_handlers(handler) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def load_plan(environ: dict[str, str] | None = None, repo: Path = REPO) -> Plan:
    environ = dict(os.environ if environ is None else environ)
    # RDC_ENV_FILE: another file instead of .env (the tests point it away from a developer's .env).
    dotenv_path = Path(environ.get("RDC_ENV_FILE") or repo / ".env")
    dotenv = parse_dotenv(dotenv_path.read_text()) if dotenv_path.exists() else {}
    # One timeline for every child: a simulated clock is anchored at this start (rdc_common.clock).
    return make_plan(with_anchor(merge_env(environ, dotenv)), repo, python=sys.executable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would start, start nothing")
    args = parser.parse_args(argv)
    try:
        plan = load_plan()
    except PlanError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe(plan))
        print("would start: " + ", ".join(s for s in plan.services if s != "migrate"))
        return 0

    stack = Stack(plan)
    archive = ArchiveSchedule(plan)
    state_file = plan.local_dir / "devstack.json"

    def on_signal(signum, frame):
        raise Stop(signum)

    def while_stopping(signum, frame):
        print(f"  ({signal.Signals(signum).name}: still stopping, please wait)", flush=True)

    _install_handlers(on_signal)
    code = 0
    try:
        stack.start()
        # Written whole then renamed: /health may already answer, and a reader must never see half a file.
        partial = state_file.with_suffix(".json.partial")
        # The clock's variables too: `make archive` runs the job on the stack's own timeline.
        partial.write_text(json.dumps({"pid": os.getpid(), "pids": stack.pids(), "ports": plan.listening_ports(),
                                       "http_url": plan.http_url, "clock": plan.clock.env(),
                                       "archive_url": plan.archive_url}, indent=2))
        partial.replace(state_file)
        print(banner(plan, plan.clock.now()), flush=True)  # the stack's clock
        while True:
            ended = stack.exited()
            if ended:
                name, rc = ended
                unit_log = plan.log_file(name if name != "nginx" else "nginx-error")
                print(f"\n{name} exited with code {rc}; stopping everything. Last lines of {unit_log}:\n"
                      f"{tail(unit_log)}", file=sys.stderr, flush=True)
                code = 1
                break
            archive.poll()
            time.sleep(0.5)
    except Stop as stop:
        print(f"\n{stop} received: stopping.", flush=True)
    except (StartError, MissingBinary, PlanError, RuntimeError, TimeoutError, OSError,
            subprocess.CalledProcessError) as exc:
        print(f"\nmake run: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        _install_handlers(while_stopping)
        started_any = bool(stack.units)
        archive.stop()
        stack.stop()
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
        if started_any:
            print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
