"""`python -m collector_ecs check-connection` explains each failure in plain English."""

import os
import subprocess
import sys

import pytest

from devstack.services import free_port
from simulator.testing import SimulatorProcess

from .collector_helpers import REPO

pytestmark = pytest.mark.integration
PASSWORD = "Corr3ct-Horse"


@pytest.fixture(scope="module")
def sims():
    plain = SimulatorProcess(seed=2, rate=50, users=f"demo:{PASSWORD}", heartbeat_interval=45).start()
    tls = SimulatorProcess(seed=2, rate=50, users=f"demo:{PASSWORD}", tls=True).start()
    yield plain, tls
    plain.stop()
    tls.stop()


def check(url, password=PASSWORD, system="Rithmic Paper Trading", **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RITHMIC_")}
    env.update(RITHMIC_URL=url, RITHMIC_USER="demo", RITHMIC_PASSWORD=password, RITHMIC_SYSTEM_NAME=system,
               RITHMIC_APP_NAME="wxyz:RdcCheck", CONFIG_FILE="/nonexistent.json", RDC_ENV_FILE="/nonexistent.env",
               CONNECT_TIMEOUT_S="5", **extra)
    if system is None:
        del env["RITHMIC_SYSTEM_NAME"]
    res = subprocess.run([sys.executable, "-m", "collector_ecs", "check-connection"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout + res.stderr


def test_good_credentials_list_systems_log_in_and_resolve_front_month(sims):
    code, out = check(sims[0].url)
    assert code == 0, out
    assert "Rithmic Paper Trading" in out and "Rithmic Test" in out
    assert "login OK" in out and "front month of ES on CME: ESZ6" in out
    assert "presenting application name 'wxyz:RdcCheck' version '2.0'" in out
    assert "plants reached: ticker, history" in out
    assert "heartbeat interval (the gateway's): ticker 45 s, history 45 s" in out
    assert PASSWORD not in out


def test_wrong_password_is_permission_denied_code_13(sims):
    code, out = check(sims[0].url, password="wrong-one")
    assert code == 1
    assert "permission denied (Rithmic code 13)" in out and "RITHMIC_PASSWORD" in out
    # Rithmic answers a wrong password and an unapproved application name alike; off its test
    # gateway the output says so and names the application it presented.
    assert "cannot tell which" in out and "RITHMIC_APP_NAME ('wxyz:RdcCheck')" in out
    assert "plants reached: none" in out
    assert "wrong-one" not in out


def test_unknown_system_name_lists_the_valid_ones(sims):
    code, out = check(sims[0].url, system="Rithmic 99")
    assert code == 1
    assert "unknown system name 'Rithmic 99'" in out and "Rithmic Paper Trading" in out


def test_no_system_name_off_the_test_gateway_lists_the_valid_ones(sims):
    code, out = check(sims[0].url, system=None)
    assert code == 1
    assert "RITHMIC_SYSTEM_NAME is not set" in out and "Rithmic Paper Trading, Rithmic Test" in out


def test_nothing_listening_says_cannot_reach(sims):
    code, out = check(f"ws://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach" in out


def test_tls_without_the_simulators_ca_explains_and_with_it_works(sims):
    tls = sims[1]
    code, out = check(tls.url)
    assert code == 1 and "TLS failed" in out and "RITHMIC_CA_FILE" in out
    code, out = check(tls.url, RITHMIC_CA_FILE=str(tls.cert_file))
    assert code == 0, out
