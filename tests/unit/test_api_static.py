"""The pages the API serves itself (chalicelib/static.py): /docs and its vendored assets, with the
pages' strict CSP, content types, versioned caching and no way out of the page's folder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from chalice.test import Client

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

import app as api_app  # noqa: E402
from chalicelib import db as api_db  # noqa: E402
from chalicelib import static  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:No application metrics")]

DOCS = static.SITES[0]


@pytest.fixture
def http(monkeypatch):
    # Keys on: the pages must still open without one (the page asks for it itself).
    monkeypatch.setenv("API_KEYS", "unit-test-key")
    api_db.reset_for_tests()
    try:
        with Client(api_app.app, project_dir=str(API_DIR)) as client:
            yield client.http
    finally:
        api_db.reset_for_tests()


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(docs/[^"]+)"', html)


def test_docs_page_is_html_with_the_strict_page_csp_and_no_key(http):
    r = http.get("/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
    html = r.body.decode()
    assert "{{" not in html  # every placeholder replaced
    assert "<script>" not in html and " style=" not in html  # nothing inline for the CSP to allow
    urls = _asset_urls(html)
    assert {u.split("?")[0] for u in urls} == {"docs/swagger-ui.css", "docs/docs.css", "docs/swagger-ui-bundle.js",
                                               "docs/docs.js"}


@pytest.mark.parametrize("name, content_type", [("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
                                                ("swagger-ui.css", "text/css; charset=utf-8"),
                                                ("docs.js", "text/javascript; charset=utf-8")])
def test_versioned_assets_are_cached_for_a_year_and_unversioned_ones_revalidated(http, name, content_type):
    html = http.get("/docs").body.decode()
    (url,) = [u for u in _asset_urls(html) if u.startswith(f"docs/{name}?")]
    r = http.get("/" + url)
    assert r.status_code == 200 and r.headers["Content-Type"] == content_type
    assert r.headers["Cache-Control"] == static.IMMUTABLE
    assert r.body == (DOCS.directory / name).read_bytes()
    stale = http.get(f"/docs/{name}?v=000000000000")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"
    again = http.get(f"/docs/{name}", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.body == b""


@pytest.mark.parametrize("path", ["/docs/index.html", "/docs/nothing.js", "/docs/LICENSE", "/docs/..%2Fstatic.py",
                                  "/docs/.hidden.js", "/docs/licenses"])
def test_anything_else_under_docs_is_the_api_json_404(http, path):
    r = http.get(path)
    assert r.status_code == 404, path
    assert r.headers["Content-Type"] == "application/json"
    assert set(r.json_body) == {"error", "message", "request_id"}


def test_the_json_routes_stay_keyed(http):
    assert http.get("/openapi.json").status_code == 401


def test_the_vendored_library_ships_with_its_licence():
    licences = DOCS.directory / "licenses" / "swagger-ui-dist"
    assert "Apache License" in (licences / "LICENSE").read_text()
    assert (licences / "VERSION").read_text().startswith("swagger-ui-dist ")


# -- the web console at / ------------------------------------------------------------------------------

CONSOLE = next(s for s in static.SITES if s.page == "/")


def test_the_console_is_the_root_page_with_the_strict_csp_and_no_key(http):
    r = http.get("/")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'self'") and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    html = r.body.decode()
    assert "{{" not in html and "<script>" not in html and " style=" not in html
    for testid in ("symbols", "price-chart", "book-ladder", "trade-tape", "collector-health", "gap-timeline",
                   "subscribe-form"):
        assert f'data-testid="{testid}"' in html, testid
    # Every file the page names (versioned, or preloaded under the name app.js imports it by) is served.
    urls = re.findall(r'(?:src|href)="(console/[^"]+)"', html)
    assert {u.split("?")[0] for u in urls} == {"console/console.css", "console/app.js", "console/api.js",
                                               "console/chart.js", "console/panels.js",
                                               "console/lightweight-charts.standalone.production.mjs"}
    for url in urls:
        asset = http.get("/" + url)
        assert asset.status_code == 200, url
        assert asset.headers["Content-Security-Policy"] == csp
    module = http.get("/console/lightweight-charts.standalone.production.mjs")
    assert module.headers["Content-Type"] == "text/javascript; charset=utf-8"


def test_every_module_import_of_the_console_is_a_file_it_serves():
    for script in CONSOLE.directory.glob("*.js"):
        for name in re.findall(r'from "\./([^"]+)"', script.read_text()):
            assert (CONSOLE.directory / name).is_file(), (script.name, name)


def test_the_console_inserts_server_values_as_text_only():
    """No innerHTML, outerHTML, insertAdjacentHTML or document.write in the console's own code: every
    server string reaches the page through textContent (the browser tests show markup literally)."""
    for script in CONSOLE.directory.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, (script.name, sink)


def test_the_stage_root_without_its_slash_is_redirected_so_relative_asset_urls_stay_in_the_stage(monkeypatch):
    """API Gateway serves /<stage> and /<stage>/ both as the root route; the page's relative URLs only
    work from the second."""
    from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

    monkeypatch.delenv("API_KEYS", raising=False)
    api_db.reset_for_tests()
    converter = LambdaEventConverter(RouteMatcher(list(api_app.app.routes)), api_app.app.api.binary_types)
    event = converter.create_lambda_event(method="GET", path="/", headers={"host": "x"}, body=b"")
    event["requestContext"]["path"] = "/api"
    response = api_app.app(event, LambdaContext(function_name="rdc-api", memory_size=1024))
    assert response["statusCode"] == 308 and response["headers"]["Location"] == "api/"
    event["requestContext"]["path"] = "/api/"
    assert api_app.app(event, LambdaContext(function_name="rdc-api", memory_size=1024))["statusCode"] == 200


def test_the_charting_library_ships_with_its_licence_and_notice():
    licences = CONSOLE.directory / "licenses" / "lightweight-charts"
    assert "Apache License" in (licences / "LICENSE").read_text()
    assert "TradingView, Inc." in (licences / "NOTICE").read_text()
    assert (licences / "VERSION").read_text().startswith("lightweight-charts ")
    bundle = (CONSOLE.directory / "lightweight-charts.standalone.production.mjs").read_text()
    assert "TradingView Lightweight Charts" in bundle[:300]
