"""/docs in a real browser (Debian's Chromium through Playwright), through real NGINX in front of the
API over recorded data: Swagger UI renders every operation of /openapi.json, "Try it out" calls the
API, and nothing breaks the page's strict CSP or shows up red in the console.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import RESEARCH_KEY

pytestmark = pytest.mark.e2e

PAGE_CSP = re.compile(r"^default-src 'self';")
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


def _operation_ids(api_url: str, key: str | None = None) -> set[str]:
    doc = httpx.get(f"{api_url}/openapi.json", headers={"x-api-key": key} if key else {}).json()
    return {op["operationId"] for item in doc["paths"].values() for op in item.values()}


def _rendered_operation_ids(page) -> set[str]:
    page.locator(".opblock").first.wait_for()
    return {t.strip() for t in page.locator(".opblock-summary-operation-id").all_inner_texts()}


def _try_ticks(page, symbol: str) -> str:
    """Open getTicks, "Try it out" with `symbol` and limit 3, execute; the response body shown."""
    op = page.locator(".opblock", has=page.locator(".opblock-summary-operation-id", has_text=re.compile("^getTicks$")))
    op.locator(".opblock-summary").first.click()
    op.locator("button.try-out__btn").click()
    op.locator('tr[data-param-name="symbol"] input').fill(symbol)
    op.locator('tr[data-param-name="limit"] input').fill("3")
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    return op.locator(".live-responses-table .response-col_description pre").first.inner_text()


def test_docs_through_nginx_carry_the_page_csp_and_json_keeps_its_own(open_api):
    page = httpx.get(f"{open_api.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert PAGE_CSP.match(page.headers["content-security-policy"]), page.headers
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "unsafe-eval" not in page.headers["content-security-policy"]
    # One copy of each header (the API's and NGINX's would otherwise both appear).
    for name in ("content-security-policy", "cache-control", "x-content-type-options", "x-frame-options",
                 "referrer-policy"):
        assert len(page.headers.get_list(name)) == 1, (name, page.headers.get_list(name))
    assert page.headers["cache-control"] == "no-cache"
    bundle = re.search(r'src="(docs/swagger-ui-bundle\.js\?v=\w+)"', page.text).group(1)
    asset = httpx.get(f"{open_api.url}/{bundle}", headers={"accept-encoding": "gzip"})
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-encoding"] == "gzip"  # 1.7 MB of JavaScript
    api = httpx.get(f"{open_api.url}/api/stats")
    assert api.headers["content-security-policy"] == JSON_CSP and api.headers["cache-control"] == "no-store"
    missing = httpx.get(f"{open_api.url}/docs/nothing.js")
    assert missing.status_code == 404 and missing.headers["content-security-policy"] == JSON_CSP


def test_docs_render_every_operation_with_no_console_error_or_csp_violation(open_api, page):
    expected = _operation_ids(open_api.url)
    page.goto(f"{open_api.url}/docs")
    assert _rendered_operation_ids(page) == expected
    assert page.locator("#rdc-status").inner_text() == f"{len(open_api_paths(open_api.url))} routes, API 2.0.0"
    body = _try_ticks(page, "ESZ6")
    assert '"symbol": "ESZ6"' in body and '"count": 3' in body
    assert page.problems() == []


def test_docs_ask_for_the_key_when_the_api_needs_one_and_use_it_for_every_call(keyed_api, page):
    page.goto(f"{keyed_api.url}/docs")
    form = page.locator("#rdc-key")
    form.wait_for()
    page.locator("#rdc-key-input").fill("not-the-key")
    page.locator("#rdc-key button").click()
    page.locator("#rdc-key-error").filter(has_text="does not hold a valid API key").wait_for()
    page.locator("#rdc-key-input").fill(RESEARCH_KEY)
    page.locator("#rdc-key button").click()
    assert _rendered_operation_ids(page) == _operation_ids(keyed_api.url, RESEARCH_KEY)
    assert form.is_hidden()
    body = _try_ticks(page, "ESZ6")
    assert '"symbol": "ESZ6"' in body
    # The only red lines are the two refusals the page itself turned into its key form.
    refused = [line for line in page.console_errors() if re.search(r"status of 40[13]", line)]
    assert len(refused) == 2, page.console
    assert [p for p in page.problems() if p not in refused] == []
    assert RESEARCH_KEY not in keyed_api.logs_text()


def open_api_paths(url: str) -> dict:
    return httpx.get(f"{url}/openapi.json").json()["paths"]
