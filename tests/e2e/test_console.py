"""The web console at / in a real browser (Debian's Chromium through Playwright) on `make run`'s stack
through NGINX: simulator, collector with live snapshots, PostgreSQL, Redis, `chalice local`.

The tests share one stack and one browser (module scope) and run in file order. Each leaves a
screenshot in test-artifacts/ (the `page` fixture). With RDC_UPDATE_SCREENSHOTS=1 the first one
also writes docs/console.png, the picture at the top of the README.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from devstack.testing import http
from rdc_common.calendar import front_contract
from rdc_common.clock import default_clock
from rdc_common.products import DEFAULT_PRODUCTS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NOW = default_clock().now()
DEFAULT_SYMBOLS = [front_contract(code, NOW).symbol for code in DEFAULT_PRODUCTS]
NEW_SYMBOL = front_contract("YM", NOW).symbol  # CBOT: not among the defaults
LADDER = '[data-testid="book-ladder"]'
CHART = '[data-testid="price-chart"]'

# Counts the chart's canvas pixels drawn in the candle colours (chart.js UP and DOWN): a chart with
# candles has many, an empty one (or one with only axes and grid) none.
CANDLE_PIXELS = """
() => {
  const colours = [[0x26, 0xa6, 0x9a], [0xef, 0x53, 0x50]];
  let n = 0;
  for (const canvas of document.querySelectorAll('[data-testid="price-chart"] canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 250) continue;
      for (const [r, g, b] of colours) {
        if (Math.abs(data[i] - r) < 6 && Math.abs(data[i + 1] - g) < 6 && Math.abs(data[i + 2] - b) < 6) { n++; break; }
      }
    }
  }
  return n;
}
"""


def open_console(page, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='true']", timeout=60_000)


def ladder_rows(page) -> list[tuple[str, float, int, int | None]]:
    rows = page.eval_on_selector_all(f"{LADDER} tr[data-side]", "rows => rows.map(r => [r.dataset.side, "
                                     "r.dataset.price, r.dataset.size, r.dataset.orders])")
    return [(side, float(p), int(s), int(o) if o else None) for side, p, s, o in rows]


def select(page, symbol: str, interval: str | None = None) -> None:
    page.select_option("#symbol-select", symbol)
    page.wait_for_function("s => document.body.dataset.symbol === s", arg=symbol)
    if interval is not None:
        page.click(f"#intervals button[data-interval='{interval}']")


def test_the_console_loads_with_data_in_every_panel_and_no_console_error(stack, page):
    open_console(page, stack.http_url)
    symbols = page.locator('[data-testid="symbols"] tbody tr[data-symbol]')
    symbols.first.wait_for()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=\"symbols\"] tr[data-status=\"active\"]')"
                           ".length >= n", arg=len(DEFAULT_SYMBOLS))
    listed = set(page.eval_on_selector_all('[data-testid="symbols"] tr[data-status="active"]',
                                           "rows => rows.map(r => r.dataset.symbol)"))
    assert set(DEFAULT_SYMBOLS) <= listed
    page.wait_for_selector('[data-testid="collector-health"] [data-metric="connected"][data-state="ok"]')
    page.wait_for_selector('[data-testid="trade-tape"] tr[data-ts]')
    page.wait_for_selector('[data-testid="gap-timeline"] li')
    assert int(page.get_attribute(CHART, "data-bars")) > 0
    # The charting library's attribution, as its licence asks, on the page.
    assert "TradingView" in page.inner_text(".attribution")
    if os.environ.get("RDC_UPDATE_SCREENSHOTS") == "1":
        # The README's picture: second bars, so a stack a minute old already shows a chart.
        page.click("#intervals button[data-interval='1s']")
        page.wait_for_function(f"() => Number(document.querySelector('{CHART}').dataset.bars) >= 40", timeout=90_000)
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "console.png"))
    assert page.problems() == []


def test_the_chart_draws_candles_for_each_default_symbol(stack, page):
    open_console(page, stack.http_url)
    for symbol in DEFAULT_SYMBOLS:
        select(page, symbol, "1s")
        page.wait_for_function("() => { const c = document.querySelector('[data-testid=\"price-chart\"]');"
                               " return c.dataset.interval === '1s' && Number(c.dataset.bars) >= 5; }")
        page.wait_for_function(f"({CANDLE_PIXELS})() >= 50")
    assert page.problems() == []


def test_the_ladder_shows_ten_levels_a_side_every_bid_below_every_ask(stack, page):
    open_console(page, stack.http_url)
    page.wait_for_function(f"() => document.querySelectorAll('{LADDER} tr[data-side=\"bid\"]').length === 10 && "
                           f"document.querySelectorAll('{LADDER} tr[data-side=\"ask\"]').length === 10")
    rows = ladder_rows(page)
    bids = [r for r in rows if r[0] == "bid"]
    asks = [r for r in rows if r[0] == "ask"]
    assert len(bids) == len(asks) == 10
    assert max(b[1] for b in bids) < min(a[1] for a in asks)
    assert all(r[2] > 0 for r in rows)
    # Each row shows its order count, or a dash where the feed gives none (the simulator's books carry
    # no order counts yet; tests/e2e/test_console_keys.py checks counts against a known snapshot).
    shown = page.eval_on_selector_all(f"{LADDER} tr[data-side]", "rows => rows.map(r => [r.dataset.orders, "
                                      "r.querySelector(r.dataset.side === 'bid' ? 'td:first-child' : "
                                      "'td:last-child').textContent])")
    assert all(text == (orders or "—") for orders, text in shown), shown
    assert page.problems() == []


def test_the_tape_gains_new_trades_within_2s(stack, page):
    open_console(page, stack.http_url)
    first = page.locator('[data-testid="trade-tape"] tr[data-ts]').first
    first.wait_for()
    newest = first.get_attribute("data-ts")
    page.wait_for_function("t => { const r = document.querySelector('[data-testid=\"trade-tape\"] tr[data-ts]');"
                           " return r && r.dataset.ts > t; }", arg=newest, timeout=2_000)
    assert page.locator('[data-testid="trade-tape"] tr.buy, [data-testid="trade-tape"] tr.sell').count() > 0
    assert page.problems() == []


def test_clicking_the_chart_shows_the_book_at_that_instant_as_the_api_rebuilds_it(stack, page):
    open_console(page, stack.http_url)
    select(page, DEFAULT_SYMBOLS[0], "1s")
    page.wait_for_function(f"() => Number(document.querySelector('{CHART}').dataset.bars) >= 8")
    x, y = page.evaluate("""() => {
        const c = window.rdcConsole.chart;
        const bar = c.bars[c.bars.length - 6];
        return [c.chart.timeScale().timeToCoordinate(bar.time), c.candles.priceToCoordinate(bar.close)];
    }""")
    box = page.locator(CHART).bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_function(f"() => {{ const l = document.querySelector('{LADDER}');"
                           f" return l.dataset.mode === 'history' && l.dataset.loaded === l.dataset.at; }}")
    at = page.get_attribute(LADDER, "data-at")
    book = httpx.get(f"{stack.http_url}/api/book/{DEFAULT_SYMBOLS[0]}", params={"at": at, "depth": 10}).json()
    expected = sorted([("bid", b["price"], b["size"], b["orders"]) for b in book["bids"]]
                      + [("ask", a["price"], a["size"], a["orders"]) for a in book["asks"]])
    assert expected and sorted(ladder_rows(page)) == expected
    assert page.problems() == []


def test_polling_stops_while_the_tab_is_hidden(stack, page):
    open_console(page, stack.http_url)
    hide = ("v => { Object.defineProperty(document, 'visibilityState', {value: v, configurable: true});"
            " document.dispatchEvent(new Event('visibilitychange')); }")
    page.evaluate(hide, "hidden")
    page.wait_for_timeout(500)  # a request already under way may still land
    before = page.evaluate("window.rdcConsole.counters.live")
    page.wait_for_timeout(2000)
    assert page.evaluate("window.rdcConsole.counters.live") == before
    page.evaluate(hide, "visible")
    page.wait_for_function("n => window.rdcConsole.counters.live > n + 2", arg=before)


def test_subscribing_from_the_form_makes_the_symbol_active_and_a_refusal_shows_the_api_message(stack, page):
    open_console(page, stack.http_url)
    page.fill("#subscribe-symbol", NEW_SYMBOL.lower())
    page.click('#subscribe-form button[value="subscribe"]')
    page.wait_for_selector(f"#subscribe-message.ok:has-text('Subscription request for {NEW_SYMBOL}')")
    page.wait_for_selector(f'[data-testid="symbols"] tr[data-symbol="{NEW_SYMBOL}"][data-status="active"]',
                           timeout=60_000)
    status, _, body = http("POST", f"{stack.http_url}/api/subscribe/NOT-A-SYMBOL", b"")
    refusal = json.loads(body)["message"]
    assert status == 400 and refusal
    page.fill("#subscribe-symbol", "NOT-A-SYMBOL")
    page.click('#subscribe-form button[value="subscribe"]')
    page.wait_for_selector("#subscribe-message.error")
    assert page.inner_text("#subscribe-message") == refusal
    # The refused request is the only red line (Chromium logs every 4xx a page fetches).
    assert [p for p in page.problems() if "status of 400" not in p] == []


def test_a_disconnect_shows_up_as_a_gap_on_the_timeline(stack, page):
    symbol = DEFAULT_SYMBOLS[0]
    open_console(page, stack.http_url)
    select(page, symbol)
    control = f"http://127.0.0.1:{stack.ports['RDC_SIM_CONTROL_PORT']}"
    status, _, body = http("POST", control + "/faults/disconnect", b"")
    assert status == 200 and json.loads(body)["dropped"] >= 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        gaps = httpx.get(f"{stack.http_url}/api/gaps/{symbol}").json()["data"]
        if any(g["end"] for g in gaps):
            break
        time.sleep(1)
    else:
        pytest.fail(f"no closed gap of {symbol} recorded after the disconnect: {gaps}")
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    select(page, symbol)
    page.wait_for_selector('[data-testid="gap-timeline"] .track .gap')
    items = page.eval_on_selector_all('[data-testid="gap-timeline"] li[data-start]',
                                      "items => items.map(i => [i.dataset.start, i.dataset.backfilled])")
    assert {g["start"] for g in gaps} <= {start for start, _ in items}
    assert all(backfilled in ("true", "false") for _, backfilled in items)
