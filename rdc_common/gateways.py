"""Rithmic's public test gateway and the system it offers, the one pair every part of the project
(collector, devstack, compose, CDK) defaults to. Production gateway addresses are not listed:
Rithmic hands them out only after an application passes conformance."""

from __future__ import annotations

from urllib.parse import urlsplit

TEST_GATEWAY_HOST = "rituz00100.rithmic.com"
TEST_GATEWAY_URL = f"wss://{TEST_GATEWAY_HOST}:443"
TEST_SYSTEM_NAME = "Rithmic Test"


def is_test_gateway(url: str) -> bool:
    """True for Rithmic's test gateway, with or without scheme and port."""
    host = urlsplit(url if "://" in url else "wss://" + url).hostname or ""
    return host.lower() == TEST_GATEWAY_HOST


def default_system_name(url: str) -> str | None:
    """The system name to use when none is given: only the test gateway has an obvious one."""
    return TEST_SYSTEM_NAME if is_test_gateway(url) else None
