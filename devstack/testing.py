"""`make run` as a test drives it: `python -m devstack.run` in a subprocess, seen only from outside.

`StackProcess` starts the same code path a user's `make run` does, waits until NGINX answers
/health, and stops it the way a terminal's Ctrl-C does (SIGINT to its process group). It can then
say what, if anything, was left behind: processes that still carry this stack's private
RDC_LOCAL_DIR in their environment, and ports still listening.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.plan import PORT_DEFAULTS
from devstack.services import free_port, port_open

REPO = Path(__file__).resolve().parent.parent
# Variables of the user's own setup that must not leak into a test's stack.
_SCRUB = ("DATABASE_URL", "REDIS_URL", "RITHMIC_USER", "RITHMIC_PASSWORD", "RITHMIC_URL", "RITHMIC_SYSTEM_NAME",
          "SYMBOLS", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "RDC_LOCAL_DIR", "HEALTH_FILE",
          "RDC_SPOOL_DIR", "RDC_ENV_FILE", *(var for var, _ in PORT_DEFAULTS.values()))


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One request; returns (status, lower-cased headers, body) for any status."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def get_json(url: str, timeout: float = 10) -> tuple[int, dict]:
    status, _, body = http("GET", url, timeout=timeout)
    return status, json.loads(body) if body else {}


@dataclass
class StackProcess:
    """One `python -m devstack.run` with its own .local directory and free ports."""

    local_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = field(default=None, init=False)
    output: Path | None = field(default=None, init=False)
    pids: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = {var: free_port() for var, _ in PORT_DEFAULTS.values()}

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['RDC_HTTP_PORT']}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update({k: str(v) for k, v in self.ports.items()})
        env["RDC_LOCAL_DIR"] = str(self.local_dir)
        # Never a developer's .env: it may hold real Rithmic credentials.
        env["RDC_ENV_FILE"] = str(self.local_dir / "no.env")
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as an unprivileged account when we are root; it must reach this directory.
        os.chmod(self.local_dir, 0o755)
        self.output = self.local_dir / "devstack-output.log"
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.run"], cwd=REPO, env=self.env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def read_output(self) -> str:
        return self.output.read_text(errors="replace") if self.output and self.output.exists() else ""

    def wait_healthy(self, timeout: float = 180) -> dict:
        """Wait until /health through NGINX says healthy; returns that document."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devstack exited with {self.proc.returncode}:\n{self.read_output()[-4000:]}")
            with contextlib.suppress(OSError, ValueError):
                status, doc = get_json(self.http_url + "/health", timeout=5)
                last = (status, doc)
                # NGINX and the API answer before devstack has started the collector and written its
                # state file; the stack is up only when both hold (and the file is this run's).
                if status == 200 and doc.get("status") == "healthy":
                    state = self._state()
                    if state is not None:
                        self.pids = state["pids"]
                        return doc
            time.sleep(0.5)
        raise TimeoutError(f"stack not healthy within {timeout:.0f}s (last: {last}):\n{self.read_output()[-4000:]}")

    def _state(self) -> dict | None:
        path = self.local_dir / "devstack.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("pid") == self.proc.pid else None

    def interrupt(self, timeout: float = 90, sig: int = signal.SIGINT) -> int:
        """Ctrl-C as a terminal sends it (SIGINT to the process group), or `sig`; returns the exit code."""
        if self.proc is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def leftovers(self) -> list[str]:
        """Processes still alive that this stack started (they carry its RDC_LOCAL_DIR), as 'pid cmdline'."""
        marker = f"RDC_LOCAL_DIR={self.local_dir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                if marker not in environ:
                    continue
                status = (entry / "status").read_text()
                if "\nState:\tZ" in status:
                    continue
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            found.append(f"{entry.name} {cmd}")
        for name, pid in self.pids.items():
            if Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                found.append(f"{pid} ({name})")
        return sorted(set(found))

    def listening(self) -> list[int]:
        return [port for port in self.ports.values() if port_open(port)]

    def kill(self) -> None:
        """Last resort for a test that failed half-way: nothing of this stack may outlive the test."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for line in self.leftovers():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
