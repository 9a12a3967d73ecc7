"""Run the simulator as a child process for tests, benchmarks and demos.

Use: ``with SimulatorProcess(seed=7, rate=500) as sim:``, then point ``RithmicClient(...,
url=sim.url)`` at it, set ``client.ssl_context = sim.client_ssl_context()`` (None for ws://),
and read counters with ``sim.stats()["sent"]["ESZ6"]["last_trade"]``.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_READY = re.compile(r"listening on (?P<url>wss?://\S+) control (?P<control>http://\S+)(?:.* cert=(?P<cert>\S+))?")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The simulator gets SIGTERM if the process that started it dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SimulatorError(RuntimeError):
    """The simulator process did not start or a control request failed."""


class SimulatorProcess:
    """``python -m simulator`` on free loopback ports, started by ``start()`` and ended by ``stop()``."""

    def __init__(
        self,
        seed: int = 1,
        rate: int = 200,
        users: str | dict[str, str] = "demo:demo",
        tls: bool = False,
        heartbeat_interval: float | None = None,
        clock: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        die_with_parent: bool = True,
    ):
        if isinstance(users, dict):
            users = ",".join(f"{u}:{p}" for u, p in users.items())
        self.args = ["--host", host, "--port", "0", "--seed", str(seed), "--rate", str(rate), "--users", users]
        if tls:
            self.args.append("--tls")
        if heartbeat_interval is not None:
            self.args += ["--heartbeat-interval", str(heartbeat_interval)]
        self.args += list(extra_args)
        self.tls = tls
        # RDC_CLOCK_* for this simulator only (default: whatever the environment says, which the
        # test suite pins; see tests/conftest.py).
        self.clock = dict(clock or {})
        # Linux ties this to the starting thread: turn it off when starting from a short-lived thread.
        self.die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.control_url: str | None = None
        self.cert_file: Path | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    # lifecycle
    def start(self, timeout: float = 20.0) -> SimulatorProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="rithmic-sim-")
        workdir = Path(self._dir.name)
        args = list(self.args)
        if self.tls:
            args += ["--cert-dir", str(workdir / "tls")]
        self.stdout_path = workdir / "stdout.txt"
        self.log_path = workdir / "simulator.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(self.clock)
        with open(self.stdout_path, "wb") as out, open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simulator", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _READY.search(self.stdout_path.read_text())
            if match:
                self.url = match["url"]
                self.control_url = match["control"]
                self.cert_file = Path(match["cert"]) if match["cert"] else None
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log_path.read_text()[-2000:]
        self.stop()
        raise SimulatorError(f"the simulator did not start (args {args}); its log ends with:\n{log}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """The ``ssl_context`` to give async_rithmic's client: None for ws://, trust in our cert for wss://."""
        if self.cert_file is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert_file)
        return ctx

    # control API
    def _call(self, method: str, path: str) -> dict:
        if self.control_url is None:
            raise SimulatorError("the simulator is not running: call start() first")
        request = urllib.request.Request(self.control_url + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SimulatorError(f"{method} {path} failed: {exc.code} {exc.read().decode(errors='replace')}") from None

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def disconnect(self) -> dict:
        return self._call("POST", "/faults/disconnect")

    def stall(self, seconds: float) -> dict:
        return self._call("POST", f"/faults/stall?seconds={seconds}")

    def forced_logout(self) -> dict:
        return self._call("POST", "/faults/forced-logout")

    def send_garbage(self) -> dict:
        return self._call("POST", "/faults/garbage")

    def set_rate(self, value: int) -> dict:
        return self._call("POST", f"/rate?value={value}")
