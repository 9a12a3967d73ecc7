"""The sentence a refused login gets: the likely cause where the gateway's answer tells it, and an
honest "cannot tell" where it does not."""

import pytest

from collector_ecs.check_connection import explain
from collector_ecs.config import load_settings
from collector_ecs.rithmic_internals import LoginRefused

pytestmark = pytest.mark.unit
BASE = {"RITHMIC_USER": "alice", "RITHMIC_PASSWORD": "s3cret-pw", "CONFIG_FILE": "/nonexistent.json",
        "RITHMIC_APP_NAME": "abcd:MyRecorder"}
PRODUCTION = {**BASE, "RITHMIC_URL": "wss://gateway.example:443", "RITHMIC_SYSTEM_NAME": "Rithmic 01"}


def test_on_the_test_gateway_code_13_points_at_the_credentials():
    text = explain(LoginRefused(["13", "permission denied"]), load_settings(BASE))
    assert text.startswith("permission denied (Rithmic code 13): most likely RITHMIC_USER or RITHMIC_PASSWORD")
    assert "not the application name 'abcd:MyRecorder'" in text


def test_elsewhere_a_bare_permission_denied_cannot_tell_password_from_application_name():
    text = explain(LoginRefused(["13", "permission denied"]), load_settings(PRODUCTION))
    assert text.startswith("permission denied (Rithmic code 13): check RITHMIC_USER and RITHMIC_PASSWORD first")
    assert "cannot tell which" in text and "RITHMIC_APP_NAME ('abcd:MyRecorder')" in text
    assert "s3cret-pw" not in text


def test_a_refusal_that_names_the_application_says_so():
    text = explain(LoginRefused(["13", "application not permitted on this system"]), load_settings(PRODUCTION))
    assert "(the gateway said 'application not permitted on this system')" in text
    assert "refused the application name 'abcd:MyRecorder'" in text and "RITHMIC_APP_NAME" in text
    assert "cannot tell" not in text
