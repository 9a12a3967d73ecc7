// The web console: which symbols are recorded, a chart, the book, the tape, the collector's health
// and the gaps, kept fresh by polling the API while the tab is visible (never while hidden).
// Live data comes from /api/live/<symbol>, a snapshot the collector refreshes at most every 250 ms.

import { api, ApiError, apiKey, isoSeconds, KeyNeeded, parseTime, setApiKey } from "./api.js";
import { INTERVALS, PriceChart } from "./chart.js";
import { renderGaps, renderHealth, renderLadder, renderSymbols, renderTape, utcTime } from "./panels.js";

const LIVE_MS = 300; // about 3 requests a second
const HEALTH_MS = 3000;
const SUBSCRIPTIONS_MS = 5000;
const GAPS_MS = 10000;
const RESYNC_MS = 15000; // the newest bars from the database, correcting what live trades built
const GAP_WINDOW_MS = 24 * 3600 * 1000;

const $ = (id) => document.getElementById(id);
const state = {
  symbol: null,
  interval: "1m",
  subscriptions: [],
  markets: null,
  clockOffsetMs: 0, // the API's clock minus this browser's (the API may run a simulated clock)
  lastTradeTs: null,
  lastTradeSeen: new Set(),
  bookAt: null, // null: live; else the instant (epoch seconds) the ladder shows
  historyDone: false,
  firstData: { chart: false, book: false, marked: false },
  stopped: false,
  generation: 0, // bumped when the symbol or interval changes; late answers for the old one are dropped
};
const counters = { live: 0 };
// For tests and the benchmark: the page's own view of what it drew.
window.rdcConsole = { state, counters };

const serverNow = () => Date.now() + state.clockOffsetMs;
let clockKnown;
const clockReady = new Promise((resolve) => {
  clockKnown = resolve;
});

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

// -- polling, only while visible ------------------------------------------------------------------

const loops = [];

function every(name, ms, fn) {
  const loop = { name, ms, fn, timer: null, running: false };
  loops.push(loop);
  return loop;
}

async function run(loop) {
  loop.timer = null;
  if (document.visibilityState !== "visible" || state.stopped || loop.running) {
    return;
  }
  loop.running = true;
  try {
    await loop.fn();
  } catch (error) {
    failed(error);
  } finally {
    loop.running = false;
  }
  if (document.visibilityState === "visible" && !state.stopped && loop.timer === null) {
    loop.timer = setTimeout(() => run(loop), loop.ms);
  }
}

function startLoops() {
  for (const loop of loops) {
    if (loop.timer === null && !loop.running) {
      run(loop);
    }
  }
}

function stopLoops() {
  for (const loop of loops) {
    clearTimeout(loop.timer);
    loop.timer = null;
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    startLoops();
  } else {
    stopLoops();
  }
});

function failed(error) {
  if (error instanceof KeyNeeded) {
    askForKey(apiKey() ? error.message : "");
    return;
  }
  setStatus(error instanceof ApiError ? `${error.title}: ${error.message}` : String(error.message || error),
            "error");
}

// -- API key --------------------------------------------------------------------------------------

function askForKey(message) {
  state.stopped = true;
  stopLoops();
  $("key-form").hidden = false;
  $("key-error").textContent = message;
  setStatus("API key needed", "error");
  $("key-input").focus();
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setApiKey($("key-input").value.trim());
  try {
    await api("api/subscriptions");
  } catch (error) {
    if (error instanceof KeyNeeded) {
      $("key-error").textContent = error.message;
      return;
    }
  }
  $("key-form").hidden = true;
  $("key-input").value = "";
  state.stopped = false;
  start();
});

// -- symbols --------------------------------------------------------------------------------------

async function refreshSubscriptions() {
  const doc = await api("api/subscriptions");
  state.subscriptions = doc.subscriptions;
  drawSymbols();
  const select = $("symbol-select");
  // A followed product (kind "product", e.g. ES) is recorded through its contracts, which have rows of
  // their own: those are what the chart and the book can show.
  const contracts = doc.subscriptions.filter((s) => s.kind !== "product");
  const wanted = contracts.filter((s) => s.desired !== false).map((s) => s.symbol);
  const options = [...new Set([...wanted, ...(state.symbol ? [state.symbol] : [])])];
  if (options.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...options.map((s) => {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s;
      return o;
    }));
  }
  if (state.symbol === null) {
    const first = contracts.find((s) => s.status === "active") || contracts[0];
    if (first) {
      selectSymbol(first.symbol);
    }
  }
  select.value = state.symbol ?? "";
}

function drawSymbols() {
  renderSymbols($("symbols-body"), state.subscriptions, state.markets, state.symbol, selectSymbol);
}

$("symbol-select").addEventListener("change", (event) => selectSymbol(event.target.value));

$("subscribe-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const op = event.submitter && event.submitter.value === "unsubscribe" ? "unsubscribe" : "subscribe";
  const symbol = $("subscribe-symbol").value.trim();
  const exchange = $("subscribe-exchange").value.trim();
  const message = $("subscribe-message");
  message.className = "message";
  message.textContent = op === "subscribe" ? `Subscribing ${symbol}…` : `Unsubscribing ${symbol}…`;
  try {
    const doc = await api(`api/subscribe/${encodeURIComponent(symbol)}`, {
      method: op === "subscribe" ? "POST" : "DELETE", body: exchange ? { exchange } : undefined,
    });
    message.textContent = doc.message;
    message.className = "message ok";
    await refreshSubscriptions();
  } catch (error) {
    if (error instanceof KeyNeeded) {
      failed(error);
      return;
    }
    message.textContent = error.message;
    message.className = "message error";
  }
});

// -- the selected symbol: chart, book, tape, gaps ----------------------------------------------------

let chart = null;

function selectSymbol(symbol) {
  if (!symbol || symbol === state.symbol) {
    return;
  }
  state.symbol = symbol;
  document.body.dataset.symbol = symbol;
  $("symbol-select").value = symbol;
  $("chart-title").textContent = `Chart ${symbol}`;
  drawSymbols();
  state.lastTradeTs = null;
  state.lastTradeSeen = new Set();
  showLiveBook();
  renderTape($("tape-body"), []);
  renderLadder($("ladder-body"), [], []);
  loadChart();
  refreshLive().catch(failed);
  refreshGaps().catch(failed);
}

function selectInterval(name) {
  state.interval = name;
  for (const b of document.querySelectorAll("#intervals button")) {
    b.setAttribute("aria-pressed", String(b.dataset.interval === name));
  }
  $("price-chart").dataset.interval = name;
  loadChart();
}

for (const b of document.querySelectorAll("#intervals button")) {
  b.addEventListener("click", () => selectInterval(b.dataset.interval));
}

async function loadChart() {
  if (!state.symbol) {
    return;
  }
  const generation = ++state.generation;
  const symbol = state.symbol;
  const width = INTERVALS[state.interval];
  chart.reset(width);
  state.historyDone = false;
  const doc = await api(`api/bars/${encodeURIComponent(symbol)}?interval=${state.interval}`).catch((error) => {
    failed(error);
    return null;
  });
  if (doc === null || generation !== state.generation) {
    return;
  }
  chart.replaceFrom(0, PriceChart.fromApi(doc.data));
  chart.showLatest();
  if (doc.data.length) {
    state.firstData.chart = true;
    markFirstData();
  }
}

// Scrolled back to the first bar: the previous window of bars (the API's default, 1000 buckets),
// stepping further back over windows without trades (a closed market), three at most.
async function loadHistory() {
  if (state.historyDone || chart.loadingHistory || chart.first === null) {
    return;
  }
  chart.loadingHistory = true;
  const generation = state.generation;
  try {
    let end = chart.first;
    for (let step = 0; step < 3; step += 1) {
      const doc = await api(`api/bars/${encodeURIComponent(state.symbol)}?interval=${state.interval}&end=${isoSeconds(end)}`);
      if (generation !== state.generation) {
        return;
      }
      if (chart.prepend(PriceChart.fromApi(doc.data))) {
        return;
      }
      end = Math.round(parseTime(doc.start) / 1000);
    }
    state.historyDone = true;
  } catch (error) {
    failed(error);
  } finally {
    chart.loadingHistory = false;
  }
}

async function resyncBars() {
  const last = chart.last;
  if (!state.symbol || !last) {
    return;
  }
  const generation = state.generation;
  const doc = await api(`api/bars/${encodeURIComponent(state.symbol)}?interval=${state.interval}&start=${isoSeconds(last.time)}`);
  if (generation === state.generation && doc.data.length) {
    chart.replaceFrom(last.time, PriceChart.fromApi(doc.data));
  }
}

async function refreshLive() {
  if (!state.symbol) {
    return;
  }
  const symbol = state.symbol;
  let doc;
  try {
    doc = await api(`api/live/${encodeURIComponent(symbol)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("book-caption").textContent = "no live data yet";
      return;
    }
    throw error;
  }
  counters.live += 1;
  if (symbol !== state.symbol) {
    return;
  }
  if (state.bookAt === null) {
    renderLadder($("ladder-body"), doc.book.bids, doc.book.asks);
    $("book-caption").textContent = doc.book.trusted
      ? `live, ${doc.age_s.toFixed(1)} s old`
      : "waiting for a snapshot after an outage";
    if (doc.book.bids.length && doc.book.asks.length) {
      state.firstData.book = true;
      markFirstData();
    }
  }
  renderTape($("tape-body"), doc.trades);
  // Trades not yet applied to the chart, oldest first (several can share a timestamp).
  const fresh = [];
  for (const t of doc.trades) {
    const key = `${t.timestamp}|${t.price}|${t.size}|${t.aggressor}`;
    if (state.lastTradeTs !== null && (t.timestamp < state.lastTradeTs
        || (t.timestamp === state.lastTradeTs && state.lastTradeSeen.has(key)))) {
      continue;
    }
    fresh.push([t, key]);
  }
  fresh.reverse();
  if (fresh.length) {
    const newest = fresh[fresh.length - 1][0].timestamp;
    if (newest !== state.lastTradeTs) {
      state.lastTradeSeen = new Set();
    }
    state.lastTradeTs = newest;
    for (const [t, key] of fresh) {
      if (t.timestamp === newest) {
        state.lastTradeSeen.add(key);
      }
    }
    chart.applyTrades(fresh.map(([t]) => t));
  }
}

function markFirstData() {
  if (!state.firstData.marked && state.firstData.chart && state.firstData.book) {
    state.firstData.marked = true;
    performance.mark("rdc-first-data");
    document.body.dataset.ready = "true";
  }
}

// -- the book at an instant -----------------------------------------------------------------------

async function showBookAt(barTime, width) {
  // The book as the clicked bar closed (or now, for the bar still open).
  await clockReady;
  const at = Math.min(barTime + width, Math.floor(serverNow() / 1000));
  const iso = isoSeconds(at);
  const ladder = document.querySelector('[data-testid="book-ladder"]');
  state.bookAt = at;
  ladder.dataset.mode = "history";
  ladder.dataset.at = iso;
  $("book-live").hidden = false;
  $("book-caption").textContent = `at ${utcTime(iso, true)} UTC…`;
  try {
    const doc = await api(`api/book/${encodeURIComponent(state.symbol)}?at=${encodeURIComponent(iso)}&depth=10`);
    if (state.bookAt !== at) {
      return;
    }
    renderLadder($("ladder-body"), doc.bids, doc.asks);
    $("book-caption").textContent = `at ${utcTime(iso, true)} UTC (last update ${utcTime(doc.as_of)})`;
    ladder.dataset.loaded = iso;
  } catch (error) {
    if (error instanceof ApiError && state.bookAt === at) {
      renderLadder($("ladder-body"), [], []);
      $("book-caption").textContent = error.message;
      ladder.dataset.loaded = iso;
      return;
    }
    throw error;
  }
}

function showLiveBook() {
  state.bookAt = null;
  const ladder = document.querySelector('[data-testid="book-ladder"]');
  ladder.dataset.mode = "live";
  delete ladder.dataset.at;
  delete ladder.dataset.loaded;
  $("book-live").hidden = true;
  $("book-caption").textContent = "live";
}

$("book-live").addEventListener("click", () => {
  showLiveBook();
  refreshLive().catch(failed);
});

// -- health and gaps ----------------------------------------------------------------------------------

async function refreshHealth() {
  const health = await api("health");
  state.clockOffsetMs = parseTime(health.timestamp) - Date.now();
  clockKnown();
  state.markets = health.collector ? health.collector.markets ?? null : null;
  let symbols = [];
  try {
    symbols = (await api("api/symbols")).symbols;
  } catch (error) {
    if (error instanceof KeyNeeded) {
      // /health needs no key: show the collector while the page asks for one.
      renderHealth($("health-metrics"), $("health-symbols"), health, [], serverNow());
      throw error;
    }
  }
  renderHealth($("health-metrics"), $("health-symbols"), health, symbols, serverNow());
  drawSymbols();
  if (health.status === "healthy") {
    setStatus(`API clock ${utcTime(health.timestamp, true)} UTC`, "ok");
  } else {
    setStatus("the API reports a problem: see Collector", "error");
  }
}

async function refreshGaps() {
  if (!state.symbol) {
    return;
  }
  const symbol = state.symbol;
  await clockReady;
  const end = serverNow();
  const start = end - GAP_WINDOW_MS;
  const doc = await api(`api/gaps/${encodeURIComponent(symbol)}?start=${new Date(start).toISOString()}&end=${new Date(end).toISOString()}`);
  if (symbol !== state.symbol) {
    return;
  }
  renderGaps($("gap-track"), $("gap-list"), doc, serverNow());
  $("gap-axis-start").textContent = `${doc.start.slice(5, 10)} ${doc.start.slice(11, 16)}`;
  $("gap-axis-end").textContent = `${doc.end.slice(5, 10)} ${doc.end.slice(11, 16)} UTC`;
  $("gaps-caption").textContent = `${symbol}, last 24 h: ${doc.count} gap${doc.count === 1 ? "" : "s"}`;
}

// -- start ------------------------------------------------------------------------------------------

every("live", LIVE_MS, refreshLive);
every("health", HEALTH_MS, refreshHealth);
every("subscriptions", SUBSCRIPTIONS_MS, refreshSubscriptions);
every("gaps", GAPS_MS, refreshGaps);
every("bars", RESYNC_MS, resyncBars);

function start() {
  startLoops();
}

chart = new PriceChart($("price-chart"), { onPick: (t, w) => showBookAt(t, w).catch(failed), onNeedHistory: loadHistory });
window.rdcConsole.chart = chart;
selectInterval("1m");
start();
