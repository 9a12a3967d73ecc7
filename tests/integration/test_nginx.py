"""NGINX as `make run` and the compose file run it, in front of a stub API on loopback.

The stub is a real HTTP server in this process, so these tests see exactly what a client of
the proxy sees: security headers, JSON errors, the body limit, the rate limit, which paths pass.
"""

from __future__ import annotations

import http.client
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from devstack.services import Nginx, free_port, nginx_readable_dir, port_open, render_nginx_template

pytestmark = pytest.mark.integration

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class StubApi(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON naming the path it got; /api/fail answers the API's own 503."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    seen: list[str] = []

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        StubApi.seen.append(self.path)
        status = 503 if self.path == "/api/fail" else 200
        body = json.dumps({"path": self.path, "forwarded_for": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Server", "stub-api/1.0")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def stub_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    StubApi.seen = []
    yield server
    server.shutdown()
    server.server_close()


def _nginx(tmp_path: Path, upstream: str, **kw) -> Nginx:
    return Nginx(confdir=tmp_path / "nginx", port=free_port(), upstream=upstream, logdir=tmp_path / "logs", **kw)


@pytest.fixture
def proxy(tmp_path, stub_api):
    nginx = _nginx(tmp_path, f"127.0.0.1:{stub_api.server_address[1]}")
    nginx.start()
    yield nginx
    nginx.stop()


def request(nginx: Nginx, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_security_headers(headers: dict) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, name


def assert_json_error(status: int, headers: dict, body: bytes, expected: int) -> dict:
    assert status == expected
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) == {"error", "message"}
    assert doc["error"] and doc["message"]
    assert_security_headers(headers)
    return doc


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/api/ticks/ESZ6?limit=10", "/api/stats"])
def test_api_routes_are_proxied_with_security_headers(proxy, path):
    status, headers, body = request(proxy, "GET", path)
    assert status == 200
    assert json.loads(body)["path"] == path
    assert_security_headers(headers)
    assert json.loads(body)["forwarded_for"] == "127.0.0.1"


def test_server_tokens_off(proxy):
    _, headers, _ = request(proxy, "GET", "/health")
    # NGINX answers for the upstream's Server header with its own, without a version.
    assert headers["server"] == "nginx"


@pytest.mark.parametrize("path", ["/index.html", "/admin", "/healthz", "/api", "/.env", "/static/x.js",
                                  "/openapi.json/x", "/console"])
def test_everything_else_is_a_json_404_that_never_reaches_the_api(proxy, path):
    status, headers, body = request(proxy, "GET", path)
    assert_json_error(status, headers, body, 404)
    assert StubApi.seen == []


@pytest.mark.parametrize("path", ["/", "/console/app.js?v=1", "/docs", "/docs/docs.js"])
def test_the_pages_are_proxied_and_without_their_own_csp_get_the_json_one(proxy, path):
    """The root (the web console) and its assets reach the API; a page answer keeps the API's own CSP
    (tests/e2e), and one without (this stub) still gets NGINX's strict JSON policy."""
    status, headers, body = request(proxy, "GET", path)
    assert status == 200 and json.loads(body)["path"] == path
    assert_security_headers(headers)


def test_post_subscribe_body_passes_and_a_large_body_is_a_json_413(proxy):
    status, _, body = request(proxy, "POST", "/api/subscribe/GCZ6", b'{"exchange": "COMEX"}',
                              {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["path"] == "/api/subscribe/GCZ6"
    status, headers, body = request(proxy, "POST", "/api/subscribe/GCZ6", b"x" * 20_000,
                                    {"Content-Type": "application/json"})
    doc = assert_json_error(status, headers, body, 413)
    assert "8 KiB" in doc["message"]
    assert StubApi.seen == ["/api/subscribe/GCZ6"]


def test_api_errors_pass_through_untouched(proxy):
    status, headers, body = request(proxy, "GET", "/api/fail")
    assert status == 503
    assert json.loads(body) == {"path": "/api/fail", "forwarded_for": "127.0.0.1"}
    assert_security_headers(headers)


def test_api_down_is_a_json_502(tmp_path):
    upstream_port = free_port()  # nothing listens here
    nginx = _nginx(tmp_path, f"127.0.0.1:{upstream_port}")
    nginx.start()
    try:
        status, headers, body = request(nginx, "GET", "/health")
    finally:
        nginx.stop()
    doc = assert_json_error(status, headers, body, 502)
    assert "API" in doc["message"]


def test_a_burst_over_the_rate_limit_gets_json_429s(tmp_path, stub_api):
    nginx = _nginx(tmp_path, f"127.0.0.1:{stub_api.server_address[1]}", rate_limit="2r/s", burst=5)
    nginx.start()
    try:
        results = [request(nginx, "GET", "/api/stats") for _ in range(30)]
    finally:
        nginx.stop()
    statuses = [r[0] for r in results]
    assert statuses.count(200) >= 5
    limited = [r for r in results if r[0] == 429]
    assert len(limited) >= 10, statuses
    assert_json_error(*limited[0], 429)


def test_nginx_429_and_503_say_when_to_retry_and_other_answers_do_not(tmp_path, stub_api):
    nginx = _nginx(tmp_path, f"127.0.0.1:{stub_api.server_address[1]}", rate_limit="1r/s", burst=1)
    nginx.start()
    try:
        results = [request(nginx, "GET", "/api/stats") for _ in range(6)]
        unavailable = request(nginx, "GET", "/api/fail")  # the API's own 503, sent without Retry-After
    finally:
        nginx.stop()
    limited = [r for r in results if r[0] == 429]
    assert limited and all(r[1].get("retry-after") == "1" for r in limited)
    assert all("retry-after" not in r[1] for r in results if r[0] == 200)
    assert unavailable[0] in (503, 429) and unavailable[1].get("retry-after") == "1"


def test_default_rate_limit_lets_a_test_run_through(proxy):
    statuses = [request(proxy, "GET", "/health")[0] for _ in range(100)]
    assert statuses == [200] * 100


def test_stop_leaves_nothing_listening(tmp_path, stub_api):
    nginx = _nginx(tmp_path, f"127.0.0.1:{stub_api.server_address[1]}")
    nginx.start()
    pid = nginx.proc.pid
    nginx.stop()
    assert not port_open(nginx.port)
    assert not Path(f"/proc/{pid}").exists()


def test_template_needs_every_value():
    with pytest.raises(KeyError, match="API_UPSTREAM"):
        render_nginx_template({"NGINX_PORT": "80", "NGINX_RATE_LIMIT": "1r/s", "NGINX_RATE_BURST": "1"})


def test_template_leaves_nginx_variables_alone():
    text = render_nginx_template(
        {"API_UPSTREAM": "api:8000", "NGINX_PORT": "80", "NGINX_RATE_LIMIT": "50r/s", "NGINX_RATE_BURST": "100",
         "ARCHIVE_ROOT": "/var/lib/rdc/archive"}
    )
    assert "server api:8000;" in text and "listen 80;" in text
    assert "$binary_remote_addr" in text and "$proxy_add_x_forwarded_for" in text
    assert "${" not in text


def test_the_local_archive_is_served_read_only_as_parquet(tmp_path, stub_api):
    """/archive/ is the directory `python -m collector_ecs archive` writes: files with Parquet's media type
    and byte ranges (readers fetch a file's footer first), nothing hidden or temporary, no listing, no
    writes, nothing outside it, and NGINX's usual headers."""
    # Where NGINX's workers (nobody, as root) can read it: pytest's own tmp_path is 0700 (make run moves
    # an unreachable archive directory the same way, devstack.services.nginx_readable_dir).
    root = nginx_readable_dir(tmp_path / "archive")
    day = root / "tick_data" / "date=2026-11-16" / "symbol=ESZ6"
    day.mkdir(parents=True)
    data = b"PAR1" + bytes(range(256)) * 8 + b"PAR1"
    (day / "part-0.parquet").write_bytes(data)
    (day / ".part-0.parquet.123.tmp").write_bytes(b"half a file")
    (root / "tick_data" / "date=2026-11-16" / "_manifest.json").write_text('{"files": []}')
    nginx = _nginx(tmp_path, f"127.0.0.1:{stub_api.server_address[1]}", archive_root=root)
    nginx.start()
    try:
        path = "/archive/tick_data/date=2026-11-16/symbol=ESZ6/part-0.parquet"
        status, headers, body = request(nginx, "GET", path)
        assert (status, body) == (200, data)
        assert headers["content-type"] == "application/vnd.apache.parquet"
        assert_security_headers(headers)
        status, headers, body = request(nginx, "GET", path, headers={"Range": "bytes=-8"})
        assert (status, body) == (206, data[-8:])
        status, headers, _ = request(nginx, "GET", "/archive/tick_data/date=2026-11-16/_manifest.json")
        assert status == 200 and headers["content-type"] == "application/json"
        for hidden in ("/archive/tick_data/date=2026-11-16/symbol=ESZ6/.part-0.parquet.123.tmp",
                       "/archive/tick_data/", "/archive/tick_data/date=2026-11-16/symbol=ESZ6/nope.parquet",
                       "/archive/../nginx/nginx.conf", "/archive/%2e%2e/nginx/nginx.conf"):
            status, headers, body = request(nginx, "GET", hidden)
            assert status in (400, 403, 404), hidden
            assert headers["content-type"] == "application/json" and json.loads(body)["error"], hidden
        status, headers, _ = request(nginx, "POST", path, body=b"{}")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert not [p for p in StubApi.seen if p.startswith("/archive")], "the API never sees archive reads"
    finally:
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)
