"""Issue 9, seen from outside: API keys, input hardening and the NGINX front, all through real NGINX.

One `chalice local` of the API (keys on) behind NGINX from nginx/templates, on the suite's
PostgreSQL (a recorded market written by the collector's own writer) and Redis; a few extra NGINX
instances from the same template for the rate limit and an unreachable API. Requests go out as raw
HTTP (http.client), so paths like /api/../etc/passwd reach NGINX exactly as typed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from devstack.plan import make_plan
from devstack.run import banner
from devstack.services import free_port
from tests.e2e.api_behind_nginx import REPO, ApiBehindNginx, api_behind_nginx
from tests.integration.test_api_support import recorded_market

pytestmark = pytest.mark.e2e

# Fresh per run, so finding one in a log can only mean this run logged it.
KEY = "rdc-e2e-" + secrets.token_hex(16)
OTHER_KEY = "rdc-e2e-other-" + secrets.token_hex(16)
WRONG_KEY = KEY[:-4] + "ffff" if not KEY.endswith("ffff") else KEY[:-4] + "0000"
STATEMENT_TIMEOUT_MS = 2000
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}
# One request per route family, and what it answers with the right key (the recorded market has an
# order book for ESZ6 in the last hours, so the book can be rebuilt).
ROUTES = [
    ("GET", "/api/stats", 200), ("GET", "/api/symbols", 200), ("GET", "/api/ticks/ESZ6?limit=5", 200),
    ("GET", "/api/level2/ESZ6?limit=5", 200), ("GET", "/api/quotes/ESZ6?limit=5", 200),
    ("GET", "/api/bars/ESZ6?interval=1m", 200), ("GET", "/api/book/ESZ6?depth=5", 200),
    ("GET", "/api/gaps/ESZ6", 200), ("GET", "/api/subscriptions", 200), ("POST", "/api/subscribe/GCZ6", 200),
    ("DELETE", "/api/subscribe/GCZ6", 200), ("GET", "/openapi.json", 200),
]


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers)
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


def send(base: str, method: str, path: str, body: bytes | None = None, key: str | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    """One request, the path sent exactly as given (no normalisation by the client)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    sent = dict(headers or {})
    if key is not None:
        sent["x-api-key"] = key
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def assert_security_headers(reply: Reply) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value, (name, reply)
    assert reply.headers.get("server") == "nginx", reply.headers  # no version


def assert_error(reply: Reply, status: int, title: str | None = None) -> dict:
    assert reply.status == status, reply
    doc = reply.json()
    assert {"error", "message"} <= set(doc) <= {"error", "message", "request_id"}, doc
    assert doc["error"] and doc["message"]
    if title is not None:
        assert doc["error"] == title, doc
    assert_security_headers(reply)
    return doc


def from_nginx(reply: Reply) -> bool:
    """NGINX's own answers carry no request id; everything the API answers does."""
    return "x-request-id" not in reply.headers and "request_id" not in reply.json()


def run_sql(url: str, sql: str, *args):
    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


# -- the running API -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def market(pg, migrated_template):
    yield from recorded_market(pg, migrated_template)


@pytest.fixture(scope="module")
def pg_log(pg, market) -> Path | None:
    """PostgreSQL's log with every statement of the market's database in it, when the server is ours.

    Set before the API connects: the setting applies to sessions opened after it.
    """
    if pg.server is None:
        return None
    name = urlsplit(market.url).path.lstrip("/")
    run_sql(pg.admin_url, f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
    return pg.server.logfile


@pytest.fixture(scope="module")
def api(market, pg_log, redis_server, tmp_path_factory) -> ApiBehindNginx:
    redis_url = redis_server if isinstance(redis_server, str) else redis_server.url
    local = tmp_path_factory.mktemp("security")
    # This module sends hundreds of requests back to back from one address, faster than the default
    # 50r/s a client gets; the limit itself is tested on its own NGINX (test_a_burst_over_the_rate_limit...).
    with api_behind_nginx(local, market.url, redis_url, API_KEYS=f"{OTHER_KEY},{KEY}",
                          DB_STATEMENT_TIMEOUT_MS=str(STATEMENT_TIMEOUT_MS),
                          RDC_NGINX_RATE="10000r/s", RDC_NGINX_BURST="10000") as running:
        yield running


# -- 1. API keys -----------------------------------------------------------------------------------

def test_health_is_open_without_a_key(api):
    reply = send(api.url, "GET", "/health")
    assert reply.status == 200 and reply.json()["status"] == "healthy"
    assert_security_headers(reply)


@pytest.mark.parametrize("method, path, status", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_other_route_is_401_without_a_key_403_with_a_wrong_one_and_served_with_the_right_one(
        api, method, path, status):
    doc = assert_error(send(api.url, method, path), 401, "Missing API key")
    assert "x-api-key" in doc["message"]
    for wrong in (WRONG_KEY, KEY[:-1], KEY + "x", KEY.upper(), OTHER_KEY[::-1]):
        doc = assert_error(send(api.url, method, path, key=wrong), 403, "Invalid API key")
        assert wrong not in json.dumps(doc)  # a sent key is never echoed
    for right in (KEY, OTHER_KEY):
        reply = send(api.url, method, path, key=right)
        assert reply.status == status, reply
        assert_security_headers(reply)


def test_the_header_name_is_case_insensitive(api):
    assert send(api.url, "GET", "/api/stats", headers={"X-API-Key": KEY}).status == 200


def test_unknown_api_paths_need_the_key_too(api):
    assert_error(send(api.url, "GET", "/api/nothing/here"), 401)
    assert_error(send(api.url, "GET", "/api/nothing/here", key=KEY), 404)


def test_keys_never_reach_a_log(api):
    for key in (KEY, OTHER_KEY, WRONG_KEY):
        send(api.url, "GET", "/api/ticks/ESZ6?limit=1", key=key)
        send(api.url, "POST", "/api/subscribe/NQZ6", b'{"exchange": "CME"}', key=key)
        send(api.url, "GET", "/api/ticks/ESZ6?limit=0", key=key)  # an error path logs too
    send(api.url, "GET", "/api/ticks/ESZ6?limit=1", headers={"X-Api-Key": KEY, "Authorization": f"Bearer {KEY}"})
    logs = api.logs_text()
    assert "/api/ticks/ESZ6?limit=1" in logs and "/api/subscribe/NQZ6" in logs  # the requests were logged
    for key in (KEY, OTHER_KEY, WRONG_KEY):
        assert key not in logs and key[-12:] not in logs


def test_writes_can_require_a_key_even_with_none_configured_as_in_aws(market, redis_server, tmp_path):
    redis_url = redis_server if isinstance(redis_server, str) else redis_server.url
    with api_behind_nginx(tmp_path / "writes", market.url, redis_url, REQUIRE_API_KEY_FOR_WRITES="1") as open_api:
        for method in ("POST", "DELETE"):
            doc = assert_error(send(open_api.url, method, "/api/subscribe/GCZ6"), 403, "API keys not configured")
            assert "API_KEYS" in doc["message"]
        assert send(open_api.url, "GET", "/api/ticks/ESZ6?limit=1").status == 200  # reads stay open


def test_make_run_says_how_to_turn_keys_on_and_never_prints_a_key():
    today = dt.datetime(2026, 11, 24, 15, tzinfo=dt.UTC).timestamp()  # a Tuesday, CME open
    off = banner(make_plan({}, REPO), today)
    assert "API_KEYS=" in off, off
    on = banner(make_plan({"API_KEYS": f"{KEY},{OTHER_KEY}"}, REPO), today)
    assert "x-api-key" in on, on
    assert KEY not in on and OTHER_KEY not in on


# -- 2. input hardening ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/ticks/ES", "/api/ticks/ESZ66", "/api/ticks/ESZ6%27%20OR%20%271%27=%271", "/api/ticks/ES%3BDROP",
    "/api/ticks/" + "A" * 300, "/api/ticks/%EF%BC%A5%EF%BC%B3%EF%BC%BA%EF%BC%96",  # full-width ＥＳＺ６
    "/api/bars/ES%0AZ6", "/api/quotes/ES%20Z6",
])
def test_malformed_symbols_are_400(api, path):
    assert_error(send(api.url, "GET", path, key=KEY), 400, "Invalid symbol")


@pytest.mark.parametrize("body, title", [
    (b'{"exchange": "NASDAQ"}', "Invalid exchange"),
    (b'{"exchange": "NYMEX"}', "Invalid exchange"),  # ES trades on CME
    (b'{"exchange": 7}', "Invalid body"),
    (b'{"exchange": ["CME"]}', "Invalid body"),
    (b'{"exchange": {"$ne": null}}', "Invalid body"),
    (b'{"exchange": "CME", "priority": 1}', "Invalid body"),
    (b'"CME"', "Invalid body"),
    (b"[1, 2]", "Invalid body"),
    (b"{", "Invalid body"),
    (b'{"exchange": "CME"', "Invalid body"),
    (b"\xff\xfe{}", "Invalid body"),
])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_malformed_or_wrongly_typed_bodies_are_400_and_change_nothing(api, market, method, body, title):
    before = run_sql(market.url, "SELECT count(*) AS n FROM subscriptions WHERE symbol = $1", "ESZ6")[0]["n"]
    assert_error(send(api.url, method, "/api/subscribe/ESZ6", body, key=KEY), 400, title)
    assert run_sql(market.url, "SELECT count(*) AS n FROM subscriptions WHERE symbol = $1", "ESZ6")[0]["n"] == before


def test_limit_is_bounded(api):
    assert send(api.url, "GET", "/api/ticks/ESZ6?limit=99999999", key=KEY).json()["limit"] == 1000
    assert send(api.url, "GET", "/api/level2/ESZ6?limit=99999999", key=KEY).json()["limit"] == 500
    for bad in ("0", "-1", "1.5", "1e3", "ten", "%20"):
        assert_error(send(api.url, "GET", f"/api/ticks/ESZ6?limit={bad}", key=KEY), 400, "Invalid limit")


def test_time_ranges_are_bounded(api):
    doc = assert_error(send(api.url, "GET", "/api/ticks/ESZ6?start=2026-01-01T00:00:00Z&end=2026-03-01T00:00:00Z",
                            key=KEY), 400, "Range too long")
    assert "7 days" in doc["message"]
    assert_error(send(api.url, "GET", "/api/bars/ESZ6?interval=1m&start=2026-01-01T00:00:00Z"
                                      "&end=2026-03-01T00:00:00Z", key=KEY), 400, "Range too long")
    assert_error(send(api.url, "GET", "/api/bars/ESZ6?interval=1d&start=2020-01-01T00:00:00Z"
                                      "&end=2026-03-01T00:00:00Z", key=KEY), 400, "Range too long")
    # Alone, a bound makes the longest range allowed, even at the ends of time (once a 500).
    doc = send(api.url, "GET", "/api/ticks/ESZ6?start=2026-01-01T00:00:00Z", key=KEY).json()
    assert (doc["start"], doc["end"]) == ("2026-01-01T00:00:00.000000+00:00", "2026-01-08T00:00:00.000000+00:00")
    for path in ("/api/ticks/ESZ6?start=9999-12-31T00:00:00Z", "/api/quotes/ESZ6?end=0001-01-01T00:00:00%2B14:00",
                 "/api/bars/ESZ6?start=9999-12-31T23:00:00-23:00", "/api/gaps/ESZ6?end=0001-01-02T00:00:00Z"):
        reply = send(api.url, "GET", path, key=KEY)
        assert reply.status == 200 and reply.json()["count"] == 0, (path, reply)
    assert_error(send(api.url, "GET", "/api/book/ESZ6?at=0001-01-01T00:00:00%2B14:00", key=KEY), 404, "No order book")
    doc = assert_error(send(api.url, "GET", "/api/ticks/ESZ6?start=1795530600000000", key=KEY), 400, "Invalid time")
    assert "out of range" in doc["message"]  # microseconds, not milliseconds


def test_a_body_over_the_api_limit_is_its_413_and_over_the_nginx_limit_nginx_413(api, market):
    just_over_api = b'{"exchange": "' + b"C" * 4200 + b'"}'  # API_MAX_BODY_BYTES is 4096, NGINX allows 8 KiB
    reply = send(api.url, "POST", "/api/subscribe/ESZ6", just_over_api, key=KEY)
    doc = assert_error(reply, 413, "Payload too large")
    assert "4096 bytes" in doc["message"] and not from_nginx(reply)
    reply = send(api.url, "POST", "/api/subscribe/ESZ6", b"x" * 20_000, key=KEY)
    doc = assert_error(reply, 413)
    assert "8 KiB" in doc["message"] and from_nginx(reply)
    assert run_sql(market.url, "SELECT count(*) AS n FROM subscriptions WHERE symbol = $1", "ESZ6")[0]["n"] == 0


def test_a_query_stuck_behind_a_lock_ends_at_the_statement_timeout_with_a_503(api, market):
    async def locked() -> Reply:
        conn = await asyncpg.connect(market.url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE tick_data IN ACCESS EXCLUSIVE MODE")
                return await asyncio.to_thread(send, api.url, "GET", "/api/ticks/ESZ6?limit=5", None, KEY)
        finally:
            await conn.close()

    doc = assert_error(asyncio.run(locked()), 503, "Query timeout")
    assert f"{STATEMENT_TIMEOUT_MS} ms" in doc["message"]
    assert send(api.url, "GET", "/api/ticks/ESZ6?limit=5", key=KEY).json()["count"] == 5  # and it recovers


INJECTIONS = [
    ("GET", "/api/ticks/ESZ6%27%3B%20DROP%20TABLE%20tick_data%3B--", None),
    ("GET", "/api/ticks/ESZ6?limit=1%3BDELETE%20FROM%20tick_data", None),
    ("GET", "/api/ticks/ESZ6?start=2026-01-01%27%20OR%201%3D1--", None),
    ("GET", "/api/ticks/ESZ6?order=desc%3B%20DELETE%20FROM%20tick_data", None),
    ("GET", "/api/ticks/ESZ6?cursor=%27%20OR%20%271%27%3D%271", None),
    ("GET", "/api/bars/ESZ6?interval=1m%27%29%3B%20DROP%20TABLE%20tick_data%3B--", None),
    ("GET", "/api/book/ESZ6?depth=1%20OR%201%3D1", None),
    ("POST", "/api/subscribe/ESZ6", b'{"exchange": "CME\'; DELETE FROM subscriptions;--"}'),
    ("DELETE", "/api/subscribe/ESZ6", b'{"exchange": "CME\' OR \'1\'=\'1"}'),
]


def test_sql_injection_attempts_are_400_and_change_nothing(api, market):
    count = "SELECT (SELECT count(*) FROM tick_data) AS ticks, (SELECT count(*) FROM subscriptions) AS subs"
    before = dict(run_sql(market.url, count)[0])
    for method, path, body in INJECTIONS:
        assert_error(send(api.url, method, path, body, key=KEY), 400)
    assert dict(run_sql(market.url, count)[0]) == before


def test_request_values_reach_postgresql_only_as_parameters(api, pg_log):
    """In PostgreSQL's own log (log_statement = all), values from a request appear as bind parameters
    and never inside a statement's text."""
    if pg_log is None:
        pytest.skip("PostgreSQL is the user's (RDC_TEST_DATABASE_URL): its log is not ours to read")
    offset = pg_log.stat().st_size
    start, end = "2026-11-20T01:02:03.456789Z", "2026-11-21T04:05:06.654321Z"
    assert send(api.url, "GET", f"/api/ticks/esz6?limit=7&start={start}&end={end}", key=KEY).status == 200
    assert send(api.url, "GET", "/api/bars/NQZ6?interval=5m", key=KEY).status == 200
    assert send(api.url, "POST", "/api/subscribe/YMH7", b'{"exchange": "CBOT"}', key=KEY).status == 200
    with open(pg_log, "rb") as f:
        f.seek(offset)
        log = f.read().decode(errors="replace")
    statements, parameters = [], []
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log):  # an entry starts with its time
        if "LOG:  execute" in entry or "LOG:  statement:" in entry:
            statements.append(entry)
        if "DETAIL:  parameters:" in entry or "DETAIL:  Parameters:" in entry:
            parameters.append(entry)
    assert any("tick_data" in s for s in statements) and any("subscriptions" in s for s in statements), log[-3000:]
    for value in ("ESZ6", "NQZ6", "YMH7", "CBOT", "2026-11-20", "01:02:03", "5 minutes", "00:05:00"):
        leaked = [s for s in statements if value in s.split("DETAIL:")[0]]
        assert not leaked, f"{value} written into SQL text: {leaked[:1]}"
    params_text = "\n".join(parameters)
    for value in ("'ESZ6'", "'NQZ6'", "'YMH7'", "'CBOT'"):
        assert value in params_text, (value, params_text[-2000:])


# -- 3. NGINX --------------------------------------------------------------------------------------

def test_security_headers_and_a_versionless_server_on_every_kind_of_answer(api):
    replies = {
        "200": send(api.url, "GET", "/api/stats", key=KEY),
        "400 api": send(api.url, "GET", "/api/ticks/ESZ6?limit=0", key=KEY),
        "401": send(api.url, "GET", "/api/stats"),
        "403": send(api.url, "GET", "/api/stats", key=WRONG_KEY),
        "404 api": send(api.url, "GET", "/api/book/ESZ6?at=2000-01-01T00:00:00Z", key=KEY),
        "404 nginx": send(api.url, "GET", "/admin"),
        "413 api": send(api.url, "POST", "/api/subscribe/ESZ6", b'{"exchange": "' + b"C" * 4200 + b'"}', key=KEY),
        "413 nginx": send(api.url, "POST", "/api/subscribe/ESZ6", b"x" * 20_000, key=KEY),
    }
    assert {name: r.status for name, r in replies.items()} == {
        "200": 200, "400 api": 400, "401": 401, "403": 403, "404 api": 404, "404 nginx": 404, "413 api": 413,
        "413 nginx": 413}
    for name, reply in replies.items():
        assert_security_headers(reply)
        assert reply.headers["content-type"].startswith("application/json"), name


def test_nginx_own_400_is_json_with_security_headers(api):
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", "/health", skip_host=True)
        conn.putheader("Host", "a b")  # a space in the host name: NGINX refuses the request itself
        conn.endheaders()
        resp = conn.getresponse()
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
    assert_error(reply, 400)
    assert from_nginx(reply)


@pytest.mark.parametrize("path", [
    "/etc/passwd", "/.git/config", "/admin", "/.env", "/server-status", "/api/../etc/passwd",
    "/api/%2e%2e/etc/passwd", "/openapi.json.bak", "/health/../admin", "/api",
    "//etc/passwd",
])
def test_only_the_api_routes_are_proxied(api, path):
    before = api.api_log.stat().st_size
    reply = send(api.url, "GET", path, key=KEY)
    assert_error(reply, 404, "Not Found")
    assert from_nginx(reply)
    with open(api.api_log, "rb") as f:
        f.seek(before)
        assert f.read() == b"", f"{path} reached the API"


@pytest.mark.parametrize("path, status", [
    ("/api/level2/Z%00Z6", 400), ("/../etc/passwd", 400), ("/%2e%2e/%2e%2e/etc/passwd", 400),
    ("/api/ticks/" + "A" * 9000, 414),
], ids=["nul", "above-root", "above-root-encoded", "9000-char-url"])
def test_paths_nginx_cannot_take_are_its_json_400_and_414(api, path, status):
    # These fail before NGINX has a URI; its error page must still be JSON (it was an HTML 500).
    before = api.api_log.stat().st_size
    reply = send(api.url, "GET", path, key=KEY)
    assert_error(reply, status)
    assert from_nginx(reply)
    with open(api.api_log, "rb") as f:
        f.seek(before)
        assert f.read() == b"", f"{path} reached the API"


def test_a_burst_over_the_rate_limit_gets_json_429s(api):
    nginx = api.extra_nginx("nginx-slow", rate_limit="1r/s", burst=2)
    try:
        replies = [send(nginx.url, "GET", "/health") for _ in range(20)]  # loopback, bounded
    finally:
        nginx.stop()
    statuses = [r.status for r in replies]
    assert 200 in statuses and statuses.count(429) >= 10, statuses
    limited = next(r for r in replies if r.status == 429)
    assert_error(limited, 429, "Too Many Requests")
    assert from_nginx(limited)


def test_an_unreachable_api_is_a_json_502(api):
    nginx = api.extra_nginx("nginx-nowhere", upstream=f"127.0.0.1:{free_port()}")
    try:
        reply = send(nginx.url, "GET", "/api/stats", key=KEY)
    finally:
        nginx.stop()
    doc = assert_error(reply, 502, "Bad Gateway")
    assert "API" in doc["message"]


@pytest.mark.parametrize("method, path, allow", [
    ("TRACE", "/api/stats", "GET"), ("TRACE", "/health", "GET"), ("QUERY", "/api/ticks/ESZ6", "GET"),
    ("PROPFIND", "/api/subscribe/ESZ6", "POST, DELETE"),
])
def test_methods_the_api_never_serves_are_nginx_json_405_with_allow(api, method, path, allow):
    before = api.api_log.stat().st_size
    reply = send(api.url, method, path, key=KEY)
    assert_error(reply, 405)
    assert reply.headers.get("allow") == allow, reply.headers
    with open(api.api_log, "rb") as f:
        f.seek(before)
        assert f.read() == b"", f"{method} reached the API"


def test_the_api_own_405_keeps_its_allow_header(api):
    reply = send(api.url, "PUT", "/api/stats", key=KEY)
    assert_error(reply, 405)
    assert reply.headers.get("allow") == "GET"

