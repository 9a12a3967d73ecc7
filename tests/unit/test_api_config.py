"""The API's settings and API-key rules (pure: no secret or database is touched)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

from chalicelib import auth  # noqa: E402
from chalicelib.config import ConfigError, load_settings  # noqa: E402
from chalicelib.db import connect_kwargs  # noqa: E402
from chalicelib.errors import Forbidden, Unauthorized  # noqa: E402

pytestmark = pytest.mark.unit


def test_defaults():
    s = load_settings({})
    assert s.db_statement_timeout_ms == 5000
    assert s.max_range == dt.timedelta(days=7) and s.max_daily_bars_range == dt.timedelta(days=366)
    assert s.max_body_bytes == 4096 and s.api_keys == () and not s.require_api_key_for_writes


def test_values_from_the_environment():
    s = load_settings({"API_KEYS": " k1, ,k2 ", "REQUIRE_API_KEY_FOR_WRITES": "1", "DB_STATEMENT_TIMEOUT_MS": "250",
                       "API_MAX_RANGE_DAYS": "2", "DATABASE_URL": "postgresql://u:p@h:1/d"})
    assert s.api_keys == ("k1", "k2") and s.require_api_key_for_writes
    assert s.db_statement_timeout_ms == 250 and s.max_range == dt.timedelta(days=2)


def test_secrets_never_show_in_the_settings_repr():
    s = load_settings({"API_KEYS": "very-secret-key", "DATABASE_URL": "postgresql://u:hunter2@h/d",
                       "DB_PASSWORD": "hunter3"})
    assert "very-secret-key" not in repr(s) and "hunter2" not in repr(s) and "hunter3" not in repr(s)


@pytest.mark.parametrize("env, name", [
    ({"DB_STATEMENT_TIMEOUT_MS": "soon"}, "DB_STATEMENT_TIMEOUT_MS"),
    ({"DB_STATEMENT_TIMEOUT_MS": "0"}, "DB_STATEMENT_TIMEOUT_MS"),
    ({"REQUIRE_API_KEY_FOR_WRITES": "maybe"}, "REQUIRE_API_KEY_FOR_WRITES"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"DB_SSLMODE": "sometimes"}, "DB_SSLMODE"),
])
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_connection_parts_and_statement_timeout():
    kwargs = connect_kwargs(load_settings({"DB_HOST": "db", "DB_PORT": "6432", "DB_USER": "rdc_api",
                                           "DB_PASSWORD": "pw", "DB_NAME": "rithmic_db", "DB_SSLMODE": "require",
                                           "DB_STATEMENT_TIMEOUT_MS": "1500"}))
    assert (kwargs["host"], kwargs["port"], kwargs["user"], kwargs["password"], kwargs["database"]) == \
        ("db", 6432, "rdc_api", "pw", "rithmic_db")
    assert kwargs["ssl"] == "require"
    assert kwargs["server_settings"]["statement_timeout"] == "1500"


@pytest.mark.parametrize("raw, keys", [
    ('{"default": "abc", "ops": "def"}', ("abc", "def")),
    ('["abc", "def"]', ("abc", "def")),
    ("abc, def", ("abc", "def")),
    ('{"default": ""}', ()),
    ("", ()),
])
def test_key_lists_from_a_secret(raw, keys):
    assert auth.parse_keys(raw) == keys


def test_keys_match_exactly():
    assert auth.key_matches("abc", ("zzz", "abc"))
    assert not auth.key_matches("ab", ("abc",))
    assert not auth.key_matches("abcd", ("abc",))
    assert not auth.key_matches("", ("abc",))


def test_access_rules():
    open_api = load_settings({})
    keyed = load_settings({"API_KEYS": "k1"})
    writes_need_keys = load_settings({"REQUIRE_API_KEY_FOR_WRITES": "1"})
    auth.authorize(open_api, "/api/ticks/{symbol}", "GET", {})
    auth.authorize(open_api, "/api/subscribe/{symbol}", "POST", {})
    auth.authorize(keyed, "/health", "GET", {})
    auth.authorize(keyed, "/api/ticks/{symbol}", "GET", {"x-api-key": "k1"})
    with pytest.raises(Unauthorized):
        auth.authorize(keyed, "/api/ticks/{symbol}", "GET", {})
    with pytest.raises(Forbidden):
        auth.authorize(keyed, "/api/ticks/{symbol}", "GET", {"x-api-key": "k2"})
    auth.authorize(writes_need_keys, "/api/ticks/{symbol}", "GET", {})
    with pytest.raises(Forbidden, match="API_KEYS"):
        auth.authorize(writes_need_keys, "/api/subscribe/{symbol}", "DELETE", {"x-api-key": "anything"})
