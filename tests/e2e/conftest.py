"""The whole stack for the e2e tests, started exactly as `make run` starts it.

One `python -m devstack.run` per module, with its own .local directory and free ports so it never
meets a developer's own `make run`. With RDC_TEST_DATABASE_URL / RDC_TEST_REDIS_URL set (no server
binaries here), it is handed a fresh database and that Redis instead of starting its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.testing import StackProcess
from rdc_common.clock import default_clock


@pytest.fixture(scope="module")
def stack(request):
    extra: dict[str, str] = {}
    database_url = None
    if os.environ.get("RDC_TEST_DATABASE_URL"):
        pg = request.getfixturevalue("pg")
        database_url = pg.create_database()
        extra["DATABASE_URL"] = database_url
    if os.environ.get("RDC_TEST_REDIS_URL"):
        extra["REDIS_URL"] = os.environ["RDC_TEST_REDIS_URL"]
    # Not under pytest's 0700 tmp: PostgreSQL runs as the postgres account when we are root.
    local = Path(tempfile.mkdtemp(prefix="rdc-e2e-"))
    proc = StackProcess(local, extra_env=extra)
    proc.start()
    try:
        proc.wait_healthy()
        proc.healthy_at = time.monotonic()
        yield proc
    finally:
        proc.kill()
        if database_url:
            request.getfixturevalue("pg").drop_database(database_url)
        pg_link = local / "pg"
        if pg_link.is_symlink():
            shutil.rmtree(os.readlink(pg_link), ignore_errors=True)
        shutil.rmtree(local, ignore_errors=True)


# -- a real browser -------------------------------------------------------------------------------
# Debian's Chromium driven by Playwright (which cannot download its own browser here). One browser
# per test module, not per session: while Playwright's sync API is open it keeps an asyncio loop
# running on this thread, so asyncio.run() (the recorded-data helpers, async tests) fails until it
# stops; a module using the browser must not call asyncio.run() in its tests. Each test gets a fresh
# context and page that records what a user's devtools would show, and leaves a screenshot in
# test-artifacts/ (gitignored).

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Installed by the page before any of its own scripts run: every CSP violation the page meets.
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${where})`);
});
"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from devstack.services import chromium_binary

    executable = chromium_binary()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class BrowserPage:
    """A Playwright page (every Page method works on it) and what it logged: console errors,
    uncaught exceptions, CSP violations and failed requests."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed_requests.append(f"{r.method} {r.url}: {r.failure}"))
        page.add_init_script(_WATCH_CSP)

    def __getattr__(self, name):
        return getattr(self.page, name)

    def csp_violations(self) -> list[str]:
        try:
            return list(self.page.evaluate("window.__cspViolations || []"))
        except Exception as exc:  # the page may be gone; say so rather than hide it
            return [f"could not read the CSP violations: {exc}"]

    def console_errors(self) -> list[str]:
        return [line for line in self.console if line.startswith("error:")]

    def problems(self) -> list[str]:
        """Everything a user's devtools would show in red, and every CSP violation."""
        return [*self.console_errors(), *self.page_errors, *self.failed_requests, *self.csp_violations()]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.set_default_timeout(30_000)
    watched = BrowserPage(context.new_page())
    try:
        yield watched
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.nodeid.split("::", 1)[-1])
        try:
            watched.page.screenshot(path=str(ARTIFACTS / f"{name[:150]}.png"), full_page=True)
            (ARTIFACTS / f"{name[:150]}.log").write_text("\n".join(watched.console + watched.page_errors
                                                                    + watched.failed_requests) + "\n")
        finally:
            context.close()


# -- the API a researcher meets: real NGINX in front of `chalice local` over recorded data -------------

RESEARCH_KEY = "rdc-research-" + secrets.token_hex(12)


@dataclass(frozen=True)
class Research:
    url: str  # the database
    market: object  # tests.integration.test_api_support.Market
    day: object  # tests.e2e.research.Day


@pytest.fixture(scope="session")
def research(pg, migrated_template) -> Research:
    from tests.e2e.research import build_research_market

    url = pg.create_database(template=migrated_template)
    try:
        market, day = build_research_market(url, default_clock().now_dt())  # the suite clock
        yield Research(url, market, day)
    finally:
        pg.drop_database(url)


def _redis_url(redis_server) -> str:
    return redis_server if isinstance(redis_server, str) else redis_server.url


@pytest.fixture(scope="session")
def open_api(research, redis_server, tmp_path_factory):
    """The API without keys (as `make run` starts it), NGINX's limit raised above a test's pace."""
    from tests.e2e.api_behind_nginx import api_behind_nginx

    with api_behind_nginx(tmp_path_factory.mktemp("open-api"), research.url, _redis_url(redis_server),
                          RDC_NGINX_RATE="10000r/s", RDC_NGINX_BURST="10000") as running:
        yield running


@pytest.fixture(scope="session")
def keyed_api(research, redis_server, tmp_path_factory):
    """The same with API_KEYS set: RESEARCH_KEY is the valid key."""
    from tests.e2e.api_behind_nginx import api_behind_nginx

    with api_behind_nginx(tmp_path_factory.mktemp("keyed-api"), research.url, _redis_url(redis_server),
                          API_KEYS=RESEARCH_KEY, RDC_NGINX_RATE="10000r/s", RDC_NGINX_BURST="10000") as running:
        yield running
