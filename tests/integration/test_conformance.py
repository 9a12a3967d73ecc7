"""`python -m collector_ecs conformance` against the simulator: the order-plant session Rithmic's
conformance step asks for, kept up through heartbeats and a dropped connection, stopped cleanly,
and each login failure explained in one sentence."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.testing import SimulatorProcess

from .collector_helpers import REPO

pytestmark = pytest.mark.integration
PASSWORD = "Conf0rm-Pw!"
HEARTBEAT_S = 2  # the simulator drops a session silent for longer than this
_STATUS = re.compile(r"for (\d+)m(\d+)s; heartbeat every [\d.]+ s; logins (\d+), reconnects (\d+)")


@pytest.fixture(scope="module")
def sim():
    s = SimulatorProcess(seed=3, rate=10, users=f"demo:{PASSWORD}", heartbeat_interval=HEARTBEAT_S).start()
    yield s
    s.stop()


class Command:
    """The command as a real subprocess; its output goes to a file read as it grows."""

    def __init__(self, sim: SimulatorProcess, tmp_path: Path, **env_extra: str | None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RITHMIC_")}
        env.update(RITHMIC_URL=sim.url, RITHMIC_USER="demo", RITHMIC_PASSWORD=PASSWORD,
                   RITHMIC_SYSTEM_NAME="Rithmic Test", RITHMIC_APP_NAME="abcd:RdcConformanceTest",
                   CONFIG_FILE="/nonexistent.json", CONNECT_TIMEOUT_S="10", CONFORMANCE_STATUS_INTERVAL_S="0.5",
                   RDC_ENV_FILE="/nonexistent.env", PYTHONUNBUFFERED="1")
        for name, value in env_extra.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        self.path = tmp_path / "conformance.out"
        with open(self.path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "collector_ecs", "conformance"], cwd=REPO, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def output(self) -> str:
        return self.path.read_text(errors="replace")

    def wait_for(self, condition, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            if self.proc.poll() is not None:
                raise AssertionError(f"the command exited ({self.proc.returncode}) waiting for {what}:\n{self.output}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output}")

    def statuses(self) -> list[tuple[int, int, int]]:
        """(seconds logged in, logins, reconnects) of each status line so far."""
        return [(int(m) * 60 + int(s), int(n), int(r)) for m, s, n, r in _STATUS.findall(self.output)]

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        return code, self.output

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def run(sim, tmp_path):
    started: list[Command] = []

    def start(**env_extra) -> Command:
        cmd = Command(sim, tmp_path, **env_extra)
        started.append(cmd)
        return cmd

    yield start
    for cmd in started:
        cmd.kill()


def order_sessions(sim) -> int:
    return sim.stats()["sessions"].get("order", 0)


def simulator_events(sim, event: str) -> list[dict]:
    lines = (json.loads(line) for line in sim.log_path.read_text().splitlines() if line.startswith("{"))
    return [e for e in lines if e.get("event") == event]


def wait_until(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_logs_in_to_the_order_plant_stays_up_through_heartbeats_and_reconnects_after_a_drop(sim, run):
    logins_before = len(simulator_events(sim, "login"))
    cmd = run()
    cmd.wait_for(lambda: "login 1 OK" in cmd.output, "the first login")
    assert order_sessions(sim) == 1
    assert "application name 'abcd:RdcConformanceTest' version" in cmd.output

    # Three heartbeat intervals logged in on the same session: heartbeats keep it up.
    cmd.wait_for(lambda: any(up >= 3 * HEARTBEAT_S for up, _, _ in cmd.statuses()), "three heartbeat intervals")
    assert all((n, r) == (1, 0) for _, n, r in cmd.statuses())
    assert order_sessions(sim) == 1 and sim.stats()["connections"] == 1
    assert len(simulator_events(sim, "login")) == logins_before + 1
    assert not [e for e in simulator_events(sim, "dropping silent session") if e.get("plant") == "order"]

    # The gateway drops every connection: the command reconnects and logs in again.
    assert sim.disconnect()["dropped"] == 1
    cmd.wait_for(lambda: "login 2 OK" in cmd.output, "the login after the drop")
    cmd.wait_for(lambda: any((n, r) == (2, 1) for _, n, r in cmd.statuses()), "a status line after the reconnect")
    wait_until(lambda: order_sessions(sim) == 1, "the simulator to see one order session again")
    assert len(simulator_events(sim, "login")) == logins_before + 2
    assert cmd.proc.poll() is None, "still running"
    assert PASSWORD not in cmd.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_logs_out_and_exits_0(sim, run, sig):
    logouts_before = len(simulator_events(sim, "logout"))
    cmd = run()
    cmd.wait_for(lambda: cmd.statuses(), "a status line")
    wait_until(lambda: order_sessions(sim) == 1, "the order session")
    cmd.proc.send_signal(sig)
    code, out = cmd.finish()
    assert code == 0, out
    assert "logged out of the order plant" in out
    wait_until(lambda: len(simulator_events(sim, "logout")) == logouts_before + 1, "the simulator to see a logout")
    assert simulator_events(sim, "logout")[-1]["plant"] == "order"
    wait_until(lambda: sim.stats()["connections"] == 0, "the connection to close")
    assert PASSWORD not in out


def test_a_wrong_password_is_the_code_13_sentence(sim, run):
    cmd = run(RITHMIC_PASSWORD="Wr0ng-Secret")
    code, out = cmd.finish()
    assert code == 1
    assert "FAIL: permission denied (Rithmic code 13)" in out and "RITHMIC_PASSWORD" in out
    # Not the test gateway: the answer cannot tell a password from an unapproved application name.
    assert "RITHMIC_APP_NAME ('abcd:RdcConformanceTest')" in out and "cannot tell" in out
    assert "Wr0ng-Secret" not in out and PASSWORD not in out
    wait_until(lambda: sim.stats()["connections"] == 0, "the refused connection to close")


def test_an_unknown_system_name_lists_the_gateways_systems(sim, run, tmp_path):
    # Given in a .env file, as a user beside `make run` would: the command reads the same file.
    (tmp_path / "rithmic.env").write_text("RITHMIC_SYSTEM_NAME='Rithmic 99'  # a typo\n")
    code, out = run(RITHMIC_SYSTEM_NAME=None, RDC_ENV_FILE=str(tmp_path / "rithmic.env")).finish()
    assert code == 1
    assert ("unknown system name 'Rithmic 99'; set RITHMIC_SYSTEM_NAME to one of: "
            "Rithmic Paper Trading, Rithmic Test") in out
    assert "login 1 OK" not in out


def test_no_system_name_on_a_gateway_other_than_rithmics_test_gateway_lists_its_systems(sim, run):
    code, out = run(RITHMIC_SYSTEM_NAME=None).finish()
    assert code == 1
    assert "RITHMIC_SYSTEM_NAME is not set" in out and "Rithmic Paper Trading, Rithmic Test" in out
