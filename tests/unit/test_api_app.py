"""The Chalice app's wiring: Powertools as middleware, our own middleware inside it, no debug output."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
from chalice import ConvertToMiddleware

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

import app as api_app  # noqa: E402
from chalicelib.middleware import guard, request_context  # noqa: E402
from chalicelib.observability import logger, metrics, tracer  # noqa: E402

pytestmark = pytest.mark.unit


def _owner(wrapper) -> object:
    func = wrapper.func if isinstance(wrapper, functools.partial) else wrapper
    return func.__self__


def test_powertools_logger_metrics_and_tracer_are_registered_as_middleware_outermost():
    handlers = list(api_app.app._get_middleware_handlers("http"))  # what every HTTP request passes through
    converted = [h for h in handlers if isinstance(h, ConvertToMiddleware)]
    assert [_owner(h._wrapper) for h in converted] == [logger, metrics, tracer]
    # Our request context runs inside Powertools (so its log keys survive clear_state) and
    # before the access checks (so their errors get a request id).
    order = [h for h in handlers if not isinstance(h, ConvertToMiddleware)]
    assert order == [request_context, guard]
    assert handlers.index(order[0]) > max(handlers.index(h) for h in converted)


def test_the_app_never_answers_with_a_stack_trace():
    assert api_app.app.debug is False
