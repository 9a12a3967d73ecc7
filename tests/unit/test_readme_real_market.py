"""README "Recording the real market" matches the code: its steps in order, and every command,
variable, CDK key and gateway it names is one the project really has."""

import json
import re
from pathlib import Path

import pytest

from collector_ecs.__main__ import COMMANDS
from rdc_common.gateways import TEST_GATEWAY_URL, default_system_name

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Recording the real market\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_steps_come_in_the_order_a_user_takes_them(section):
    steps = re.findall(r"^\*\*(\d)\. ([^*]+)\*\*", section, re.MULTILINE)
    assert [n for n, _ in steps] == ["1", "2", "3", "4", "5", "6"]
    titles = [t.lower() for _, t in steps]
    for title, expected in zip(titles, ["account", "conformance", "production", "check-connection", "make run",
                                        "aws"], strict=True):
        assert expected in title, (title, expected)
    assert "Rithmic decides" in section


def test_every_command_it_shows_exists(section):
    for command in re.findall(r"python -m collector_ecs ([a-z-]+)", section):
        assert command in COMMANDS, command
    assert {"conformance", "check-connection"} <= set(re.findall(r"python -m collector_ecs ([a-z-]+)", section))
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for target in re.findall(r"`make ([a-z-]+)`", section):
        assert target in targets, target


def test_every_variable_it_names_is_read_by_the_collector(section):
    code = "".join(p.read_text() for p in (REPO / "collector_ecs").rglob("*.py"))
    named = set(re.findall(r"\b((?:RITHMIC|CONFORMANCE)_[A-Z_]+)\b", section))
    assert {"RITHMIC_URL", "RITHMIC_SYSTEM_NAME", "RITHMIC_APP_NAME", "CONFORMANCE_STATUS_INTERVAL_S"} <= named
    for name in named:
        assert f'"{name}"' in code, f"{name} is in the README but the collector does not read it"


def test_every_cdk_key_it_names_exists_with_the_default_it_states(section):
    context = json.loads((REPO / "infra/cdk/cdk.json").read_text())["context"]
    for key in set(re.findall(r"\brdc:[a-z_]+", section)):
        assert key in context, key
    assert (context["rdc:rithmic_url"], context["rdc:rithmic_system_name"]) == (TEST_GATEWAY_URL, "Rithmic Test")


def test_the_only_real_gateway_it_names_is_rithmics_test_gateway_with_its_system(section):
    urls = set(re.findall(r"wss://[^\s`'<]+(?=[\s`'])", section))
    assert urls == {TEST_GATEWAY_URL}
    assert f"`Rithmic Test` system on `{TEST_GATEWAY_URL}`" in " ".join(section.split())
    assert default_system_name(TEST_GATEWAY_URL) == "Rithmic Test"
