"""The web console with API_KEYS on, and server strings that carry markup, in a real browser.

`chalice local` behind NGINX (as `make run` starts them, tests/e2e/api_behind_nginx.py) over the API
tests' recorded market, with a live snapshot in Redis written by the collector's own publisher and
subscription rows written straight into PostgreSQL (one of them with markup in its symbol and
reason). No simulator or collector: what the page shows here is exactly what the test stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import secrets

import asyncpg
import pytest
import redis

from collector_ecs.live import LivePublisher, MarketState
from collector_ecs.parsing import QuoteBook
from rdc_common.clock import default_clock
from tests.e2e.api_behind_nginx import api_behind_nginx
from tests.integration.test_api_support import build_market

pytestmark = pytest.mark.e2e

KEY = "rdc-console-" + secrets.token_hex(12)
MARKUP_REASON = '<img src=x onerror="window.__pwned = 1"><b>refused</b>'
MARKUP_SYMBOL = "<i>Z</i>Z9"
BIDS = [(6000.0 - 0.25 * k, 10 + k, 1 + k % 4) for k in range(12)]
ASKS = [(6000.25 + 0.25 * k, 20 + k, 2 + k % 3) for k in range(12)]
LADDER = '[data-testid="book-ladder"]'


def in_thread(fn, *args):
    """Run `fn` (which may call asyncio.run) off this thread: Playwright's sync API keeps a loop
    running here while a browser is open."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _store(url: str, redis_url: str) -> None:
    now = default_clock().now_dt()
    build_market(url, now)

    async def rows():
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO subscriptions (symbol, exchange, desired, status, reason, requested_at, "
                               "status_since) VALUES ('ESZ6', 'CME', true, 'active', NULL, $1, $1), "
                               "($2, 'CME', true, 'failed', $3, $1, $1)", now, MARKUP_SYMBOL, MARKUP_REASON)
        finally:
            await conn.close()

    asyncio.run(rows())
    market = MarketState()
    market.on_book((now, "ESZ6", "CME", "SNAPSHOT_IMAGE", tuple(b[0] for b in BIDS), tuple(b[1] for b in BIDS),
                    tuple(b[2] for b in BIDS), tuple(a[0] for a in ASKS), tuple(a[1] for a in ASKS),
                    tuple(a[2] for a in ASKS), now))
    for i in range(5):
        market.on_trade((now - dt.timedelta(seconds=5 - i), "ESZ6", "CME", 6000.25, 1 + i, "BUY", None, now, False))

    async def publish():
        publisher = LivePublisher(market, QuoteBook(), redis_url, default_clock())
        await publisher.publish_once()
        await publisher._drop()

    asyncio.run(publish())


@pytest.fixture(scope="module")
def keyed_console(pg, migrated_template, redis_server, tmp_path_factory):
    redis_url = redis_server if isinstance(redis_server, str) else redis_server.url
    client = redis.Redis.from_url(redis_url)
    client.delete("rdc:live:ESZ6")
    client.close()
    url = pg.create_database(template=migrated_template)
    try:
        in_thread(_store, url, redis_url)
        with api_behind_nginx(tmp_path_factory.mktemp("console-keys"), url, redis_url, API_KEYS=KEY,
                              RDC_NGINX_RATE="10000r/s", RDC_NGINX_BURST="10000") as running:
            yield running
    finally:
        pg.drop_database(url)


def enter_key(page, key: str) -> None:
    page.locator("#key-form").wait_for()
    page.fill("#key-input", key)
    page.click("#key-form button")


def refusals(page) -> list[str]:
    """Chromium logs every 401/403 a page fetches; those are the page asking for its key."""
    return [line for line in page.console_errors() if "status of 401" in line or "status of 403" in line]


def test_with_keys_the_page_asks_for_a_key_once_and_then_works(keyed_console, page):
    page.goto(keyed_console.url + "/")
    enter_key(page, "not-the-key")
    page.locator("#key-error").filter(has_text="does not hold a valid API key").wait_for()
    assert page.is_visible("#key-form")
    enter_key(page, KEY)
    page.wait_for_selector("body[data-ready='true']")
    assert page.is_hidden("#key-form")
    assert int(page.get_attribute('[data-testid="price-chart"]', "data-bars")) > 0
    rows = page.eval_on_selector_all(f"{LADDER} tr[data-side]", "rows => rows.map(r => [r.dataset.side, "
                                     "Number(r.dataset.price), Number(r.dataset.size), Number(r.dataset.orders)])")
    assert sorted(map(tuple, rows)) == sorted([("bid", *b) for b in BIDS[:10]] + [("ask", *a) for a in ASKS[:10]])
    assert page.locator('[data-testid="trade-tape"] tr.buy').count() == 5
    # No collector runs here: the health panel says so, marked as a problem, instead of staying empty.
    connected = page.locator('[data-testid="collector-health"] [data-metric="connected"][data-state="bad"]')
    connected.wait_for()
    assert "no collector heartbeat" in connected.inner_text()
    assert page.evaluate("sessionStorage.getItem('rdc-api-key')") == KEY
    # Kept for the tab: a reload goes straight to the data.
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    assert page.is_hidden("#key-form")
    assert [p for p in page.problems() if p not in refusals(page)] == []
    assert KEY not in keyed_console.logs_text()


def test_scrolling_the_chart_back_loads_older_bars(keyed_console, page):
    """Second bars: the first answer is the API's default window (1,000 buckets, about 17 minutes);
    the recorded market goes back two and a half hours, so scrolling to the first bar brings more."""
    page.goto(keyed_console.url + "/")
    enter_key(page, KEY)
    page.wait_for_selector("body[data-ready='true']")
    page.click("#intervals button[data-interval='1s']")
    chart = '[data-testid="price-chart"]'
    page.wait_for_function(f"() => {{ const c = document.querySelector('{chart}');"
                           f" return c.dataset.interval === '1s' && Number(c.dataset.bars) > 0; }}")
    first = page.evaluate("window.rdcConsole.chart.first")
    bars = int(page.get_attribute(chart, "data-bars"))
    page.evaluate("n => window.rdcConsole.chart.chart.timeScale().scrollToPosition(-n, false)", bars)
    page.wait_for_function(f"n => Number(document.querySelector('{chart}').dataset.bars) > n", arg=bars)
    assert page.evaluate("window.rdcConsole.chart.first") < first
    times = page.evaluate("window.rdcConsole.chart.bars.map(b => b.time)")
    assert times == sorted(set(times))  # older bars put before, none twice
    assert [p for p in page.problems() if p not in refusals(page)] == []


def test_markup_in_a_symbol_or_a_reason_is_shown_literally(keyed_console, page):
    page.goto(keyed_console.url + "/")
    enter_key(page, KEY)
    row = page.locator('[data-testid="symbols"] tr[data-status="failed"]')
    row.wait_for()
    assert row.locator("td.reason").text_content() == MARKUP_REASON
    assert row.locator("td").first.text_content() == MARKUP_SYMBOL
    assert page.locator('[data-testid="symbols"] img, [data-testid="symbols"] tbody b, '
                        '[data-testid="symbols"] tbody i').count() == 0
    assert MARKUP_SYMBOL in page.locator("#symbol-select option").all_text_contents()
    assert page.evaluate("window.__pwned") is None
    assert [p for p in page.problems() if p not in refusals(page)] == []
