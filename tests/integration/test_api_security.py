"""API keys (from the environment or Secrets Manager), write protection, and what never reaches a log."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import urlsplit

import boto3
import pytest
import redis
from moto import mock_aws

from tests.integration.test_api_support import api_client, get_json

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

KEY = "k-9f2c41d8e0b7a6"
# One request per route, all of which a key protects, and the answer with the key (the empty
# database has no order book to rebuild).
PROTECTED = [("GET", "/api/stats", 200), ("GET", "/api/symbols", 200), ("GET", "/api/ticks/ESZ6", 200),
             ("GET", "/api/level2/ESZ6", 200), ("GET", "/api/quotes/ESZ6", 200), ("GET", "/api/bars/ESZ6", 200),
             ("GET", "/api/book/ESZ6", 404), ("GET", "/api/subscriptions", 200), ("POST", "/api/subscribe/ESZ6", 200),
             ("DELETE", "/api/subscribe/ESZ6", 200), ("GET", "/openapi.json", 200)]


@pytest.fixture
def keyed(database_url, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url, API_KEYS=f"other-key,{KEY}") as http:
        yield http


@pytest.fixture
def log_lines():
    """Every line the API logs during the test, formatted as in production."""
    logger = logging.getLogger("rdc-api")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_health_needs_no_key(keyed):
    assert keyed.get("/health").status_code == 200


@pytest.mark.parametrize("method, path, status", PROTECTED)
def test_every_other_route_needs_the_key(keyed, method, path, status):
    missing = keyed.request(method, path)
    assert missing.status_code == 401
    assert missing.json_body["error"] == "Missing API key" and "x-api-key" in missing.json_body["message"]
    wrong = keyed.request(method, path, headers={"x-api-key": KEY[:-1]})
    assert wrong.status_code == 403 and wrong.json_body["error"] == "Invalid API key"
    right = keyed.request(method, path, headers={"x-api-key": KEY})
    assert right.status_code == status, right.body


def test_unknown_routes_also_need_the_key(keyed):
    assert keyed.get("/nothing/here").status_code == 401
    assert keyed.get("/nothing/here", headers={"x-api-key": KEY}).status_code == 404


def test_the_key_never_reaches_a_log_and_every_line_has_the_request_id(keyed, log_lines):
    responses = [keyed.get("/api/ticks/ESZ6", headers={"x-api-key": KEY}),
                 keyed.get("/api/ticks/ESZ6", headers={"x-api-key": KEY + "x"}),
                 keyed.get("/api/ticks/ESZ6?limit=0", headers={"x-api-key": KEY}),
                 keyed.post("/api/subscribe/ESZ6", headers={"x-api-key": KEY})]
    lines = log_lines()
    assert len(lines) >= len(responses)
    text = json.dumps(lines)
    assert KEY not in text and KEY[:8] not in text
    ids = {r.headers["X-Request-Id"] for r in responses}
    assert all(line.get("request_id") in ids for line in lines)
    assert {line["request_id"] for line in lines} == ids


def test_writes_can_require_a_key_even_when_none_is_configured(database_url, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url,
                    REQUIRE_API_KEY_FOR_WRITES="1") as http:
        for method in ("POST", "DELETE"):
            response = http.request(method, "/api/subscribe/ESZ6")
            assert response.status_code == 403
            assert response.json_body["error"] == "API keys not configured"
            assert "API_KEYS" in response.json_body["message"]
        assert http.get("/api/ticks/ESZ6").status_code == 200
        assert http.get("/api/subscriptions").json_body["count"] == 0


def test_with_keys_configured_writes_need_one_too(database_url, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url, API_KEYS=KEY,
                    REQUIRE_API_KEY_FOR_WRITES="1") as http:
        assert http.post("/api/subscribe/ESZ6").status_code == 401
        assert http.post("/api/subscribe/ESZ6", headers={"x-api-key": KEY}).status_code == 200


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_keys_and_database_login_from_secrets_manager(aws, database_url, redis_url, monkeypatch):
    keys_arn = aws.create_secret(Name="rdc/api-keys", SecretString=json.dumps({"default": KEY}))["ARN"]
    parts = urlsplit(database_url)
    db_arn = aws.create_secret(Name="rdc/api-db", SecretString=json.dumps({
        "username": parts.username, "password": "", "host": parts.hostname, "port": parts.port,
        "dbname": parts.path.lstrip("/"), "engine": "postgres"}))["ARN"]
    env = {"DATABASE_SECRET_ARN": db_arn, "API_KEYS_SECRET_ARN": keys_arn, "REDIS_URL": redis_url,
           "REQUIRE_API_KEY_FOR_WRITES": "1"}
    with api_client(monkeypatch, **env) as http:
        assert http.get("/api/ticks/ESZ6").status_code == 401
        assert get_json(http, "/api/ticks/ESZ6", headers={"x-api-key": KEY})["count"] == 0
        assert http.post("/api/subscribe/ESZ6", headers={"x-api-key": KEY}).status_code == 200
        assert get_json(http, "/health")["services"]["database"] == "connected"


def test_an_unreadable_key_secret_closes_the_api_but_not_health(aws, database_url, redis_url, monkeypatch):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rdc/none-AbCdEf"
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url, API_KEYS_SECRET_ARN=missing) as http:
        response = http.get("/api/ticks/ESZ6", headers={"x-api-key": KEY})
        assert response.status_code == 503 and response.json_body["error"] == "Configuration unavailable"
        assert "arn:" not in response.json_body["message"]
        assert http.get("/health").status_code == 200


def test_redis_auth_token_from_secrets_manager(aws, database_url, redis_url, monkeypatch):
    token = "redis-token-5d1e"
    token_arn = aws.create_secret(Name="rdc/redis-auth", SecretString=token)["ARN"]
    admin = redis.Redis.from_url(redis_url)
    admin.config_set("requirepass", token)
    try:
        with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
            assert get_json(http, "/health", 503)["services"]["redis"] == "unavailable"  # no token, no entry
        with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url,
                        REDIS_AUTH_SECRET_ARN=token_arn) as http:
            assert get_json(http, "/health")["services"]["redis"] == "connected"
            assert http.post("/api/subscribe/ESZ6").status_code == 200
        authed = redis.Redis.from_url(redis_url, password=token, decode_responses=True)
        assert [f["symbol"] for _, f in authed.xrange("rdc:commands")] == ["ESZ6"]
    finally:
        redis.Redis.from_url(redis_url, password=token).config_set("requirepass", "")
