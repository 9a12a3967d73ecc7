// The console's panels drawn from API answers. Every value from the server goes in with
// textContent (never as HTML), and every width through the CSSOM, which the page's CSP allows.

import { parseTime } from "./api.js";

const LADDER_DEPTH = 10;

export function el(tag, { text, cls, data } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  if (cls) {
    node.className = cls;
  }
  if (data) {
    for (const [k, v] of Object.entries(data)) {
      node.dataset[k] = String(v);
    }
  }
  return node;
}

function row(cells, opts) {
  const tr = el("tr", opts);
  for (const c of cells) {
    tr.appendChild(c instanceof Node ? c : el("td", { text: c }));
  }
  return tr;
}

export function utcTime(iso, withDate = false) {
  if (!iso) {
    return "—";
  }
  const t = new Date(parseTime(iso)).toISOString();
  return withDate ? `${t.slice(0, 10)} ${t.slice(11, 23)}` : t.slice(11, 23);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) {
    return "—";
  }
  const s = Math.max(0, seconds);
  if (s < 60) {
    return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

function bytes(n) {
  if (n < 1024) {
    return `${n} B`;
  }
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

// What /health's collector.markets says about a symbol (an engineer's later addition: absent on
// older collectors, so every caller copes with null).
export function marketOf(markets, symbol) {
  const m = markets && typeof markets === "object" ? markets[symbol] : null;
  if (!m || typeof m !== "object") {
    return null;
  }
  const status = m.market ?? m.status ?? null;
  return typeof status === "string" ? { status, nextOpen: m.next_open ?? null, nextClose: m.next_close ?? null }
    : null;
}

// -- symbols ----------------------------------------------------------------------------------------

export function renderSymbols(tbody, subscriptions, markets, selected, onSelect) {
  const rows = subscriptions.map((s) => {
    let pick = el("span", { text: s.symbol, cls: "product" });
    if (s.kind !== "product") {
      pick = el("button", { text: s.symbol, cls: "link", data: { symbol: s.symbol } });
      pick.type = "button";
      pick.addEventListener("click", () => onSelect(s.symbol));
    }
    const market = marketOf(markets, s.symbol);
    return row([
      wrap(pick),
      s.exchange,
      el("td", { text: s.status, cls: `status status-${s.status}` }),
      el("td", { text: market ? market.status : "—", cls: market ? `market market-${market.status}` : "" }),
      el("td", { text: s.reason ?? "", cls: "reason" }),
    ], { data: { symbol: s.symbol, status: s.status }, cls: s.symbol === selected ? "selected" : "" });
  });
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    tbody.replaceChildren(row([el("td", { text: "No subscriptions yet: subscribe a symbol below." })]));
  }
}

function wrap(node) {
  const td = document.createElement("td");
  td.appendChild(node);
  return td;
}

// -- book ladder --------------------------------------------------------------------------------------

// Prices shown with as many decimals as the finest of them has (66.60 beside 66.61, not 66.6).
export function priceFormat(prices) {
  let decimals = 2;
  for (const p of prices) {
    const s = String(p);
    const dot = s.indexOf(".");
    if (dot >= 0 && !s.includes("e")) {
      decimals = Math.max(decimals, Math.min(6, s.length - dot - 1));
    }
  }
  return (p) => (typeof p === "number" ? p.toFixed(decimals) : String(p ?? "—"));
}

function sizeCell(size, max, side) {
  const td = el("td", { cls: `size ${side}` });
  if (size !== null && size !== undefined) {
    const bar = el("span", { cls: "depth-bar" });
    bar.style.width = `${Math.round((100 * size) / Math.max(1, max))}%`;
    td.append(bar, el("span", { text: size, cls: "num" }));
  }
  return td;
}

// Asks from the 10th best down to the best, then bids from the best down: every bid below every ask.
export function renderLadder(tbody, bids, asks) {
  const b = bids.slice(0, LADDER_DEPTH);
  const a = asks.slice(0, LADDER_DEPTH);
  const max = Math.max(1, ...b.map((l) => l.size), ...a.map((l) => l.size));
  const fmt = priceFormat([...b, ...a].map((l) => l.price));
  const rows = [];
  for (const level of a.slice().reverse()) {
    rows.push(row([
      el("td", { text: "", cls: "orders" }), el("td", { cls: "size bid" }), el("td", { text: fmt(level.price), cls: "price ask" }),
      sizeCell(level.size, max, "ask"), el("td", { text: level.orders ?? "—", cls: "orders" }),
    ], { data: { side: "ask", price: level.price, size: level.size, orders: level.orders ?? "" } }));
  }
  for (const level of b) {
    rows.push(row([
      el("td", { text: level.orders ?? "—", cls: "orders" }), sizeCell(level.size, max, "bid"),
      el("td", { text: fmt(level.price), cls: "price bid" }), el("td", { cls: "size ask" }), el("td", { text: "", cls: "orders" }),
    ], { data: { side: "bid", price: level.price, size: level.size, orders: level.orders ?? "" } }));
  }
  if (!rows.length) {
    rows.push(row([el("td", { text: "No book yet." })]));
  }
  tbody.replaceChildren(...rows);
}

// -- trade tape ---------------------------------------------------------------------------------------

export function renderTape(tbody, trades) {
  const fmt = priceFormat(trades.map((t) => t.price));
  const rows = trades.slice(0, 50).map((t) => row([
    utcTime(t.timestamp), el("td", { text: fmt(t.price), cls: "num" }), el("td", { text: t.size, cls: "num" }),
    el("td", { text: t.aggressor ?? "—", cls: "side" }),
  ], { cls: `trade ${t.aggressor === "BUY" ? "buy" : t.aggressor === "SELL" ? "sell" : ""}`,
       data: { ts: t.timestamp, aggressor: t.aggressor ?? "" } }));
  if (!rows.length) {
    rows.push(row([el("td", { text: "No trades yet." })]));
  }
  tbody.replaceChildren(...rows);
}

// -- health -------------------------------------------------------------------------------------------

function metric(name, label, value, state, note) {
  const box = el("div", { cls: `metric ${state}`, data: { metric: name, state } });
  box.append(el("span", { text: label, cls: "label" }), el("span", { text: value, cls: "value" }));
  if (note) {
    box.append(el("span", { text: note, cls: "note" }));
  }
  return box;
}

function anyOpen(markets) {
  if (!markets || typeof markets !== "object") {
    return null;
  }
  const states = Object.keys(markets).map((s) => marketOf(markets, s)).filter(Boolean);
  return states.length ? states.some((m) => m.status === "open") : null;
}

// Thresholds for "abnormal": a silent collector, a stale stream while a market is open (or not
// known to be closed), a queue filling up, rows spooled to disk because PostgreSQL is away.
export const LIMITS = { heartbeatAgeS: 10, messageAgeS: 15, queueDepth: 50000, tradeAgeS: 60 };

export function renderHealth(box, tbody, health, symbols, nowMs) {
  const c = health.collector;
  const items = [];
  const dbOk = health.services && health.services.database === "connected";
  const redisOk = health.services && health.services.redis === "connected";
  items.push(metric("services", "Database / Redis", `${dbOk ? "up" : "DOWN"} / ${redisOk ? "up" : "DOWN"}`,
                    dbOk && redisOk ? "ok" : "bad"));
  const markets = c ? c.markets : null;
  const open = anyOpen(markets);
  if (!c) {
    items.push(metric("connected", "Connected", "no collector heartbeat", "bad"));
  } else {
    const beat = c.age_s;
    items.push(metric("connected", "Connected", c.connected ? "yes" : "no", c.connected && beat <= LIMITS.heartbeatAgeS
      ? "ok" : "bad", beat > LIMITS.heartbeatAgeS ? `heartbeat ${duration(beat)} old` : null));
    items.push(metric("rate", "Messages/s", Math.round(c.messages_per_s).toLocaleString("en-US"), "ok"));
    items.push(metric("queue", "Queue depth", c.queue_depth.toLocaleString("en-US"),
                      c.queue_depth > LIMITS.queueDepth ? "warn" : "ok"));
    items.push(metric("spool", "Spool", bytes(c.spool_bytes), c.spool_bytes > 0 ? "warn" : "ok",
                      c.spool_bytes > 0 ? "rows waiting for PostgreSQL" : null));
    const age = c.last_message_at ? (nowMs - parseTime(c.last_message_at)) / 1000 : null;
    const stale = age === null || age > LIMITS.messageAgeS;
    items.push(metric("message-age", "Last message", age === null ? "never" : `${duration(age)} ago`,
                      stale && open !== false ? "warn" : "ok", stale && open === false ? "markets closed" : null));
  }
  box.replaceChildren(...items);
  const rows = symbols.map((s) => {
    const market = marketOf(markets, s.symbol);
    const age = s.last_tick_update ? (nowMs - parseTime(s.last_tick_update)) / 1000 : null;
    const stale = age === null || age > LIMITS.tradeAgeS;
    const state = stale && (!market || market.status === "open") ? "warn" : "ok";
    return row([s.symbol, utcTime(s.last_tick_update), el("td", { text: age === null ? "—" : duration(age),
      cls: `age ${state}` }), market ? market.status : "—"], { data: { symbol: s.symbol, state } });
  });
  tbody.replaceChildren(...rows);
}

// -- gaps ---------------------------------------------------------------------------------------------

export function renderGaps(track, list, doc, nowMs) {
  const start = parseTime(doc.start);
  const end = Math.min(parseTime(doc.end), nowMs);
  const span = Math.max(1, end - start);
  const marks = [];
  const items = [];
  for (const g of doc.data) {
    const from = Math.max(start, parseTime(g.start));
    const to = g.end ? Math.min(end, parseTime(g.end)) : end;
    const mark = el("div", { cls: `gap ${g.backfilled ? "backfilled" : "missing"}`,
                             data: { start: g.start, backfilled: g.backfilled } });
    mark.style.left = `${(100 * (from - start)) / span}%`;
    mark.style.width = `${Math.max(0.25, (100 * (to - from)) / span)}%`;
    mark.title = `${utcTime(g.start, true)} → ${g.end ? utcTime(g.end, true) : "open"} (${g.cause})`;
    marks.push(mark);
    const seconds = ((g.end ? parseTime(g.end) : nowMs) - parseTime(g.start)) / 1000;
    const li = el("li", { cls: g.backfilled ? "backfilled" : "missing",
                          data: { start: g.start, backfilled: g.backfilled, cause: g.cause } });
    li.append(
      el("span", { text: `${utcTime(g.start, true)} → ${g.end ? utcTime(g.end, true) : "still open"}`, cls: "when" }),
      el("span", { text: duration(seconds), cls: "dur" }),
      el("span", { text: g.cause, cls: "cause" }),
      el("span", { text: g.backfilled ? `backfilled (${g.backfilled_rows} trades)` : "not backfilled",
                   cls: "fill" }),
    );
    items.push(li);
  }
  track.replaceChildren(...marks);
  if (!items.length) {
    items.push(el("li", { text: "No gaps recorded in this window.", cls: "none" }));
  }
  list.replaceChildren(...items);
  track.dataset.count = String(doc.data.length);
}
