"""Child processes of the bench: started in their own session, tied to the bench's life, stopped
with SIGTERM (then SIGKILL), their output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.services import die_with_parent

REPO = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """The bench's environment minus the user's own service settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RITHMIC_", "DB_")) and k not in ("DATABASE_URL", "REDIS_URL", "SYMBOLS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path = REPO):
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env or child_env()
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    @classmethod
    def python(cls, name: str, args: list[str], log: Path, **kw) -> Proc:
        return cls(name, [sys.executable, *args], log, **kw)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=die_with_parent)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, needle: str, timeout: float) -> None:
        """Until `needle` appears in the output; RuntimeError with the log's tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready (exit code {self.proc.poll()}); "
                           f"its log {self.log} ends with:\n{self.output()[-3000:]}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name} did not finish within {timeout:.0f}s; see {self.log}") from None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
