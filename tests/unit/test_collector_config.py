"""Start-up settings: the old README's names work, bad values are named, secrets stay hidden."""

import json
import logging

import boto3
import pytest
from moto import mock_aws

from collector_ecs.config import ConfigError, load_settings, parse_symbols
from collector_ecs.observability import JsonFormatter

pytestmark = pytest.mark.unit
BASE = {"RITHMIC_USER": "alice", "RITHMIC_PASSWORD": "s3cret-pw", "CONFIG_FILE": "/nonexistent.json"}


def test_old_readme_variables_are_read():
    s = load_settings({**BASE, "RITHMIC_SYSTEM_NAME": "Rithmic Test", "RITHMIC_APP_NAME": "X",
                       "RITHMIC_APP_VERSION": "9", "RITHMIC_URL": "ws://127.0.0.1:1", "SYMBOLS": "ESZ6,CLF7",
                       "DB_PASSWORD": "dbpw", "DB_HOST": "db", "LOG_LEVEL": "debug"})
    assert (s.rithmic_system_name, s.rithmic_app_name, s.rithmic_app_version) == ("Rithmic Test", "X", "9")
    assert [x.symbol for x in s.symbols] == ["ESZ6", "CLF7"]
    assert s.database_url.value == "postgresql://postgres:dbpw@db:5432/rithmic_db"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize("url", [None, "wss://rituz00100.rithmic.com:443", "rituz00100.rithmic.com:443",
                                 "wss://RITUZ00100.rithmic.com"])
def test_the_test_gateway_without_a_system_name_means_rithmic_test(url):
    env = {**BASE} if url is None else {**BASE, "RITHMIC_URL": url}
    s = load_settings(env)
    assert s.rithmic_url.startswith("wss://") and "rituz00100" in s.rithmic_url.lower()
    assert s.rithmic_system_name == "Rithmic Test"


@pytest.mark.parametrize("url", ["wss://gateway.example:443", "ws://127.0.0.1:8765"])
def test_any_other_gateway_without_a_system_name_stops_start_up_naming_the_variable(url):
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, "RITHMIC_URL": url})
    sentence = str(refused.value)
    assert sentence.startswith("RITHMIC_SYSTEM_NAME is not set") and url in sentence
    assert "check-connection" in sentence, "says how to find the valid names"
    given = load_settings({**BASE, "RITHMIC_URL": url, "RITHMIC_SYSTEM_NAME": "Rithmic 01"})
    assert given.rithmic_system_name == "Rithmic 01"
    # check-connection and conformance go on, to list the gateway's systems before failing.
    assert load_settings({**BASE, "RITHMIC_URL": url}, require_system_name=False).rithmic_system_name == ""


def test_an_explicit_system_name_wins_on_the_test_gateway_too():
    s = load_settings({**BASE, "RITHMIC_SYSTEM_NAME": "Rithmic Paper Trading"})
    assert s.rithmic_system_name == "Rithmic Paper Trading"


def test_symbols_entries_products_contracts_and_exchanges():
    specs = parse_symbols("ES, gcz6:comex ,CLF7,ZN")
    assert [(x.symbol, x.exchange, x.is_product) for x in specs] == [
        ("ES", "CME", True), ("GCZ6", "COMEX", False), ("CLF7", "NYMEX", False), ("ZN", "CBOT", True)]


@pytest.mark.parametrize("env,needle", [
    ({"RITHMIC_PASSWORD": "x"}, "RITHMIC_USER"),
    ({"RITHMIC_USER": "x"}, "RITHMIC_PASSWORD"),
    ({**BASE, "SYMBOLS": "ES,ESQ6"}, "months"),
    ({**BASE, "SYMBOLS": "NOTASYMBOL"}, "SYMBOLS entry"),
    ({**BASE, "SYMBOLS": "ESZ6:NYSE"}, "unknown exchange"),
    ({**BASE, "BATCH_SIZE": "0"}, "BATCH_SIZE"),
    ({**BASE, "RITHMIC_URL": "http://x"}, "RITHMIC_URL"),
    ({**BASE, "RITHMIC_CA_FILE": "/no/such.pem"}, "RITHMIC_CA_FILE"),
    ({**BASE, "REDIS_URL": "mysql://x"}, "REDIS_URL"),
    ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({**BASE, "DB_SSLMODE": "sometimes"}, "DB_SSLMODE"),
    ({**BASE, "CONFORMANCE_STATUS_INTERVAL_S": "soon"}, "CONFORMANCE_STATUS_INTERVAL_S"),
])
def test_bad_settings_stop_start_up_with_the_setting_named(env, needle):
    with pytest.raises(ConfigError, match=needle):
        load_settings({"CONFIG_FILE": "/nonexistent.json", **env})


def test_config_json_fills_batching_and_symbols(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"symbols": [{"symbol": "GCG7", "exchange": "COMEX"}],
                               "collector": {"batch_size": 777, "flush_interval_ms": 50}}))
    s = load_settings({**BASE, "CONFIG_FILE": str(cfg)})
    assert (s.batch_size, s.flush_interval_ms) == (777, 50)
    assert [(x.symbol, x.exchange) for x in s.symbols] == [("GCG7", "COMEX")]
    assert load_settings({**BASE, "CONFIG_FILE": str(cfg), "BATCH_SIZE": "5"}).batch_size == 5


def test_password_never_appears_in_repr_logs_or_summary():
    s = load_settings({**BASE, "DATABASE_URL": "postgresql://u:dbsecret@h/d", "REDIS_URL": "redis://:rsecret@h:1/0"})
    text = repr(s) + str(s.public_summary()) + f"{s.rithmic_password}"
    rec = logging.LogRecord("x", logging.INFO, "", 0, "start", (), None)
    rec.fields = s.public_summary()
    text += JsonFormatter().format(rec)
    for secret in ("s3cret-pw", "dbsecret", "rsecret"):
        assert secret not in text
    assert s.rithmic_password.value == "s3cret-pw"


@mock_aws
def test_credentials_from_secrets_manager():
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    r = sm.create_secret(Name="rithmic", SecretString=json.dumps(
        {"user": "bob", "password": "pw", "system_name": "Rithmic 01"}))
    d = sm.create_secret(Name="db", SecretString=json.dumps(
        {"username": "rdc", "password": "p@ss/word", "host": "db.internal", "port": 5432, "dbname": "rdc"}))
    s = load_settings({"CONFIG_FILE": "/nonexistent.json", "RITHMIC_SECRET_ID": r["ARN"], "DB_SECRET_ID": d["ARN"],
                       "REDIS_URL": "rediss://cache:6380/0", "REDIS_PASSWORD": "tok/en"}, secrets_client=sm)
    assert (s.rithmic_user, s.rithmic_password.value, s.rithmic_system_name) == ("bob", "pw", "Rithmic 01")
    assert s.database_url.value == "postgresql://rdc:p%40ss%2Fword@db.internal:5432/rdc"
    assert s.redis_url.value == "rediss://:tok%2Fen@cache:6380/0"
    tls = load_settings({"CONFIG_FILE": "/x", "RITHMIC_SECRET_ID": r["ARN"], "DB_SECRET_ID": d["ARN"],
                         "DB_SSLMODE": "require"}, secrets_client=sm)
    assert tls.database_url.value.endswith("/rdc?sslmode=require")  # RDS forces TLS


@mock_aws
def test_a_secret_without_system_name_follows_the_same_rule():
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    r = sm.create_secret(Name="rithmic", SecretString=json.dumps({"user": "bob", "password": "pw"}))
    env = {"CONFIG_FILE": "/nonexistent.json", "RITHMIC_SECRET_ID": r["ARN"]}
    assert load_settings(env, secrets_client=sm).rithmic_system_name == "Rithmic Test"
    with pytest.raises(ConfigError, match="RITHMIC_SYSTEM_NAME is not set.*rdc:rithmic_system_name"):
        load_settings({**env, "RITHMIC_URL": "wss://gateway.example:443"}, secrets_client=sm)
    s = load_settings({**env, "RITHMIC_URL": "wss://gateway.example:443", "RITHMIC_SYSTEM_NAME": "Rithmic 01"},
                      secrets_client=sm)
    assert s.rithmic_system_name == "Rithmic 01"


@mock_aws
def test_missing_or_malformed_secret_is_named():
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    sm.create_secret(Name="partial", SecretString=json.dumps({"user": "bob"}))
    with pytest.raises(ConfigError, match="lacks the key.*password"):
        load_settings({"CONFIG_FILE": "/x", "RITHMIC_SECRET_ID": "partial"}, secrets_client=sm)
    with pytest.raises(ConfigError, match="cannot read secret missing"):
        load_settings({"CONFIG_FILE": "/x", "RITHMIC_SECRET_ID": "missing"}, secrets_client=sm)


def test_library_log_lines_never_carry_the_password(capsys):
    """async_rithmic logs whole login requests; the collector's handlers scrub them."""
    from collector_ecs.observability import setup_logging

    setup_logging("INFO")
    lib = logging.getLogger("rithmic").getChild("plant.ticker")
    try:
        raise RuntimeError("Rithmic returned an error for the request={'user': 'alice', 'password': 's3cret-pw'}")
    except RuntimeError:
        lib.exception("Error processing response")
    out = capsys.readouterr().out
    assert "Error processing response" in out and "'password': '***'" in out
    assert "s3cret-pw" not in out
    logging.getLogger().handlers[:] = []
