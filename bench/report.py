"""The results document: every figure under a dotted key, the targets checked, a Markdown table,
and the table copied into bench/README.md between its markers (full runs only). Pure but for
the writing in `write`."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).with_name("README.md")
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"

# Every key a run produces at least, with what it means; README.md documents the same keys and
# tests/integration/test_bench.py checks that a run produces all of them.
KEYS: dict[str, str] = {
    "machine.cpu_model": "CPU model",
    "machine.cores": "logical CPUs",
    "machine.memory_gb": "RAM",
    "machine.load_1m_start": "1-minute load average when the run started",
    "machine.load_1m_end": "1-minute load average when the run ended",
    "machine.load_1m_max": "highest 1-minute load average seen between sections",
    "machine.postgres": "PostgreSQL server version",
    "machine.python": "Python version",
    "machine.mode": "tiny, quick or full",
    "machine.duration_s": "wall time of the whole run",
    "simulator.send_msgs_per_s": ("simulator send rate, one core, catching up a backlog "
                                  "(python -m simulator.bench_send --backlog, 4 symbols)"),
    "simulator.send_over_collector": "simulator send rate / collector ingest rate (target >= 3)",
    "ingest.collector_msgs_per_s": "collector end to end: rows committed per second (one row per message)",
    "ingest.stock_async_rithmic_msgs_per_s": "(a) stock async_rithmic callbacks -> same writer, rows committed/s",
    "ingest.raw_decode_msgs_per_s": "(b) collector's receive path + protobuf decode only, messages/s",
    "ingest.raw_copy_rows_per_s": "(c) copy_records_to_table of the same rows, rows/s",
    "ingest.seed_style_rows_per_s": "(d) old design: INSERT per row, autocommit, 6 indexes + 2 triggers, rows/s",
    "ingest.collector_over_stock": "collector / stock (target >= 2.5)",
    "ingest.collector_over_raw_decode": "collector / bare decode",
    "ingest.collector_over_raw_copy": "collector / raw COPY",
    "ingest.collector_over_seed_style": "collector / old design",
    "ingest.collector.cpu_share.collector": "collector process CPU (cores) during its window",
    "ingest.collector.cpu_share.postgres": "PostgreSQL CPU (cores) during the collector's window",
    "ingest.collector.cpu_share.simulator": "simulator CPU (cores) during the collector's window",
    "decode_cost.handle_ns_before": ("Ingest.handle per message, the decoding before issue 20 "
                                     "(python -m bench.decode_cost, same frames)"),
    "decode_cost.handle_ns_after": "Ingest.handle per message as shipped",
    "decode_cost.handle_change_pct": "after / before - 1, percent (negative: faster)",
    "decode_cost.trade_ns_before": "parsing.decode_trade per LastTrade, before issue 20",
    "decode_cost.trade_ns_after": "parsing.decode_trade per LastTrade as shipped (source and gateway clocks)",
    "decode_cost.trade_change_pct": "after / before - 1, percent",
    "freshness_ms.p50": "median of (commit time - exchange time) per row",
    "freshness_ms.p99": "99th percentile of the same",
    "freshness_ms.msgs_per_s": "rate the collector actually committed during the freshness window",
    "freshness_ms.rate_asked_msgs_per_s": "rate the simulator was asked for (4 symbols x --rate)",
    "ingest.live_snapshots.off_msgs_per_s": "collector with LIVE_SNAPSHOTS=0, rows committed/s (median of the pairs)",
    "ingest.live_snapshots.on_msgs_per_s": "collector with live snapshots on (the default), same run, same measure",
    "ingest.live_snapshots.drop_pct": "ingest rate lost to the live snapshots, % of the rate without (target <= 3)",
    "console.first_render_ms.cold_p50": ("web console: navigation to candles and ladder drawn, fresh browser "
                                           "context, median"),
    "console.first_render_ms.cold_max": "the same, slowest load",
    "console.first_render_ms.warm_p50": "the same after a reload (assets revalidated by ETag), median",
    "console.transfer.js_css_kb": "JavaScript + CSS bytes a cold load moved, compressed as NGINX sends them",
    "console.transfer.js_css_uncompressed_kb": "the same files uncompressed",
    "console.live_p50_ms": "/api/live/{symbol} through NGINX, median",
    "console.live_p99_ms": "/api/live/{symbol} through NGINX, 99th percentile (target <= 10)",
    "api.rows_stored": "rows stored when the api figures were taken (one day of data)",
    "api.ticks_1000_p50_ms": "/api/ticks/{symbol}?limit=1000 through NGINX, median",
    "api.ticks_1000_p99_ms": "/api/ticks/{symbol}?limit=1000 through NGINX, 99th percentile",
    "api.raw_fetch_encode_p99_ms": "the same SQL on a warm connection + json.dumps of the rows, p99",
    "api.nginx_over_raw_p99": "ticks p99 through NGINX / raw fetch + encode p99 (target <= 3)",
    "api.nginx_stock_over_raw_p99": "the same through NGINX and chalice local as Chalice ships it",
    "api.bars_1m_day_p99_ms": "/api/bars/{symbol}?interval=1m over one day through NGINX, p99",
    "api.book_at_p99_ms": "/api/book/{symbol}?at= through NGINX, p99",
    "api.stats_p99_ms": "/api/stats through NGINX, p99",
    "api.client.day_rows": "ticks in the stored day of one symbol that both downloads read",
    "api.client.raw_pages_rows_per_s": "that day read page by page (1,000 rows, next_cursor) with http.client",
    "api.client.dataframe_rows_per_s": "the same day through rdc_client.Client.ticks into a DataFrame",
    "api.client.client_over_raw": "rdc_client rate / raw page rate (target >= 0.8)",
}
for _ep in ("ticks_1000", "bars_1m_day", "book_at", "stats"):
    for _path in ("raw", "in_process", "chalice", "nginx", "chalice_stock", "nginx_stock"):
        for _q in ("p50_ms", "p99_ms"):
            KEYS[f"api.endpoints.{_ep}.{_path}.{_q}"] = f"{_ep} via {_path}"
for _tier in ("10M", "100M"):
    KEYS[f"scale.{_tier}.rows_stored"] = f"rows stored at the {_tier} tier (scaled down in quick/tiny runs)"
    KEYS[f"scale.{_tier}.ticks_1000_p99_ms"] = "ticks p99 through NGINX at this size"
    KEYS[f"scale.{_tier}.raw_fetch_encode_p99_ms"] = "raw fetch + encode p99 at this size"
    KEYS[f"scale.{_tier}.bars_1m_day_p99_ms"] = "bars p99 through NGINX at this size"
    KEYS[f"scale.{_tier}.book_at_p99_ms"] = "book p99 through NGINX at this size"
    KEYS[f"scale.{_tier}.stats_p50_ms"] = "/api/stats through NGINX, median, at this size"
    KEYS[f"scale.{_tier}.stats_p99_ms"] = "/api/stats through NGINX, p99, at this size"
    for _kind in ("trade", "quote", "book_update"):
        KEYS[f"scale.{_tier}.bytes_per_row.{_kind}"] = f"bytes on disk per stored {_kind} (table + indexes)"
KEYS.update({
    "archive.rows": "rows archived (one day of the simulator's market, 4 symbols)",
    "archive.rows_per_s": "rows archived per second: read from PostgreSQL, written, read back, checked, recorded",
    "archive.bytes_per_row.trade": "Parquet bytes per archived trade",
    "archive.bytes_per_row.quote": "Parquet bytes per archived quote",
    "archive.bytes_per_row.book_update": "Parquet bytes per archived book update",
    "targets.archive_500k.met": "archiving >= 500,000 rows/s",
    "targets.archive_bytes.met": "archived bytes per trade <= 12, per quote <= 16, per book update <= 64",
    "targets.collector_50k.met": "collector >= 50,000 msgs/s",
    "targets.collector_vs_stock.met": "collector >= 2.5 x stock",
    "targets.simulator_3x.met": "simulator send >= 3 x collector",
    "targets.freshness_p99.met": "freshness p99 <= 500 ms at 20,000 msgs/s",
    "targets.api_nginx_vs_raw.met": "ticks p99 through NGINX <= 3 x raw p99",
    "targets.stats_100m.met": "/api/stats p99 < 50 ms at the 100M tier",
    "targets.client_vs_raw.met": "rdc_client download >= 0.8 x the raw page rate",
    "targets.console_first_render.met": "console first render with data <= 1 s (cold, median)",
    "targets.console_transfer.met": "console JavaScript + CSS transferred <= 300 KB",
    "targets.live_p99.met": "/api/live p99 through NGINX <= 10 ms",
    "targets.live_snapshot_cost.met": "collector ingest drop with live snapshots on <= 3 %",
})


def flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def missing_keys(doc: dict) -> list[str]:
    flat = flatten(doc)
    return [k for k in KEYS if k not in flat]


def _target(value, limit, ok: bool, unit: str, evaluable: bool = True) -> dict:
    """`met` is None when this run is too small to judge the target (quick and tiny runs)."""
    return {"value": value, "limit": limit, "unit": unit, "met": bool(ok) if evaluable else None}


def targets(doc: dict) -> dict:
    ing, fr, api = doc["ingest"], doc["freshness_ms"], doc["api"]
    con, live = doc["console"], doc["ingest"]["live_snapshots"]
    ar = doc["archive"]
    bpr = ar["bytes_per_row"]
    big = doc["scale"]["100M"]
    sim = doc["simulator"]["send_over_collector"]
    return {
        "collector_50k": _target(ing["collector_msgs_per_s"], 50_000, ing["collector_msgs_per_s"] >= 50_000, "msgs/s"),
        "collector_vs_stock": _target(ing["collector_over_stock"], 2.5, ing["collector_over_stock"] >= 2.5, "x"),
        "simulator_3x": _target(sim, 3, sim >= 3, "x"),
        "freshness_p99": _target(fr["p99"], 500, fr["p99"] <= 500, "ms",
                                 evaluable=fr["rate_asked_msgs_per_s"] >= 20_000
                                 and fr["msgs_per_s"] >= 0.9 * fr["rate_asked_msgs_per_s"]),
        "api_nginx_vs_raw": _target(api["nginx_over_raw_p99"], 3, api["nginx_over_raw_p99"] <= 3, "x"),
        "stats_100m": _target(big["stats_p99_ms"], 50, big["stats_p99_ms"] < 50, "ms",
                              evaluable=big["rows_stored"] >= 100_000_000),
        # Tens of pages at least, or the fixed costs of a download are all there is to see.
        "client_vs_raw": _target(api["client"]["client_over_raw"], 0.8, api["client"]["client_over_raw"] >= 0.8,
                                 "x", evaluable=api["client"]["day_rows"] >= 50_000),
        "console_first_render": _target(con["first_render_ms"]["cold_p50"], 1000,
                                        con["first_render_ms"]["cold_p50"] <= 1000, "ms"),
        "console_transfer": _target(con["transfer"]["js_css_kb"], 300, con["transfer"]["js_css_kb"] <= 300, "KB"),
        "live_p99": _target(con["live_p99_ms"], 10, con["live_p99_ms"] <= 10, "ms"),
        # Run-to-run noise of one short collector window exceeds 3 %: judged on full runs only.
        "live_snapshot_cost": _target(live["drop_pct"], 3, live["drop_pct"] <= 3, "%",
                                      evaluable=doc["machine"]["mode"] == "full"),
        # Small files compress worse and fixed costs dominate a short run: judged on a million rows or more.
        "archive_500k": _target(ar["rows_per_s"], 500_000, ar["rows_per_s"] >= 500_000, "rows/s",
                                evaluable=ar["rows"] >= 1_000_000),
        "archive_bytes": _target(
            "{trade}/{quote}/{book_update}".format(**ar["bytes_per_row"]), "12/16/64",
            bpr["trade"] <= 12 and bpr["quote"] <= 16 and bpr["book_update"] <= 64, "bytes",
            evaluable=ar["rows"] >= 1_000_000),
    }


def _n(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def _verdict(met) -> str:
    return "not judged (run too small)" if met is None else ("met" if met else "**missed**")


def markdown(doc: dict) -> str:
    m, ing, fr, api, sc, tg = (doc["machine"], doc["ingest"], doc["freshness_ms"], doc["api"], doc["scale"],
                               doc["targets"])
    lines = [
        f"Run of {m['started_at']} ({m['mode']} mode, {m['duration_s']:.0f} s) on {m['cpu_model']}, "
        f"{m['cores']} cores, {m['memory_gb']} GB, PostgreSQL {m['postgres']}, Python {m['python']}; "
        f"1-minute load {m['load_1m_start']} at start, {m['load_1m_end']} at end, {m['load_1m_max']} at most "
        f"(git {m['git_commit']}).",
        "",
        "| Ingest | per second | collector is |",
        "|---|---:|---:|",
        f"| Collector end to end (simulator → WebSocket → session → COPY → commit) | "
        f"{_n(ing['collector_msgs_per_s'])} msgs | 1.00 x |",
        f"| (a) stock async_rithmic callbacks, same writer | {_n(ing['stock_async_rithmic_msgs_per_s'])} msgs | "
        f"{_n(ing['collector_over_stock'])} x |",
        f"| (b) bare protobuf decode of the same frames | {_n(ing['raw_decode_msgs_per_s'])} msgs | "
        f"{_n(ing['collector_over_raw_decode'])} x |",
        f"| (c) raw copy_records_to_table of the same rows | {_n(ing['raw_copy_rows_per_s'])} rows | "
        f"{_n(ing['collector_over_raw_copy'])} x |",
        "| (d) old design: INSERT per row, autocommit, 6 indexes, 2 triggers | "
        f"{_n(ing['seed_style_rows_per_s'])} rows | "
        f"{_n(ing['collector_over_seed_style'])} x |",
        f"| Collector, live snapshots off / on (median of {len(ing['live_snapshots']['runs_on'])}) | "
        f"{_n(ing['live_snapshots']['off_msgs_per_s'])} / {_n(ing['live_snapshots']['on_msgs_per_s'])} msgs | "
        f"{ing['live_snapshots']['drop_pct']} % lost |",
        f"| Simulator send rate, one core | {_n(doc['simulator']['send_msgs_per_s'])} msgs | "
        f"{_n(round(1 / doc['simulator']['send_over_collector'], 2))} x |",
        "",
        "CPU during the collector's window (cores): collector {collector}, PostgreSQL {postgres}, "
        "simulator {simulator}.".format(**ing["collector"]["cpu_share"]),
        "",
        "Decoding cost on {frames:,} captured simulator messages ({share:.0%} trades), before and after trades "
        "kept both clocks (issue 20), same run: Ingest.handle {hb:,} → {ha:,} ns a message ({hp:+}%), "
        "decode_trade {tb:,} → {ta:,} ns a trade ({tp:+}%).".format(
            frames=doc["decode_cost"]["frames"], share=doc["decode_cost"]["trade_share"],
            hb=doc["decode_cost"]["handle_ns_before"], ha=doc["decode_cost"]["handle_ns_after"],
            hp=doc["decode_cost"]["handle_change_pct"], tb=doc["decode_cost"]["trade_ns_before"],
            ta=doc["decode_cost"]["trade_ns_after"], tp=doc["decode_cost"]["trade_change_pct"]),
        "",
        f"Freshness at {_n(fr['msgs_per_s'])} msgs/s committed ({_n(fr['rate_asked_msgs_per_s'])} asked): "
        f"p50 {fr['p50']} ms, p90 {fr['p90']} ms, p99 {fr['p99']} ms, max {fr['max']} ms over {_n(fr['rows'])} rows; "
        "each batch's transaction took p50 {p50} ms, p99 {p99} ms".format(**fr["batch_write_ms"])
        + f" ({_n(fr['rows_per_batch'])} rows a batch).",
        "",
    ]
    prof = ing["collector"].get("profile")
    if prof and prof.get("samples"):
        lines += [f"Collector profile (py-spy, {_n(prof['samples'])} samples of its busy time, after the measured "
                  "window): self time by file, then by function.", "",
                  "| File | self | Function | self |", "|---|---:|---|---:|"]
        for (f1, s1), (f2, s2) in zip(prof["self_by_file"][:12], prof["self"][:12], strict=False):
            lines.append(f"| {f1} | {s1:.1%} | {f2} | {s2:.1%} |")
        lines.append("")
    con = doc["console"]
    lines += [f"Web console (Chromium, {con['first_render_ms']['reps']} loads, collector fed "
              f"{_n(con['sim_rate_msgs_per_s'])} msgs/s): first render with data cold p50 "
              f"{_n(con['first_render_ms']['cold_p50'])} ms (max {_n(con['first_render_ms']['cold_max'])} ms), "
              "warm p50 "
              f"{_n(con['first_render_ms']['warm_p50'])} ms; JavaScript + CSS {con['transfer']['js_css_kb']} KB "
              f"transferred ({con['transfer']['js_css_uncompressed_kb']} KB uncompressed); /api/live through NGINX "
              f"p50 {con['live_p50_ms']} ms, p99 {con['live_p99_ms']} ms.", ""]
    tiers = [("api", api)] + [(k, v) for k, v in sc.items()]
    head = "| API p50 / p99 ms | " + " | ".join(f"{k} ({_n(v['rows_stored'])} rows)" for k, v in tiers) + " |"
    lines += [head, "|---|" + "---:|" * len(tiers)]
    for ep, label in (("ticks_1000", "/api/ticks?limit=1000"), ("bars_1m_day", "/api/bars?interval=1m, one day"),
                      ("book_at", "/api/book?at="), ("stats", "/api/stats")):
        for path, plabel in (("raw", "raw SQL + JSON"), ("in_process", "in-process (Lambda handler)"),
                             ("chalice", "chalice local (as make run starts it)"), ("nginx", "NGINX"),
                             ("chalice_stock", "stock chalice local (Nagle on)"),
                             ("nginx_stock", "NGINX → stock chalice local")):
            cells = []
            for _, t in tiers:
                e = t["endpoints"][ep][path]
                cells.append(f"{e['p50_ms']:.1f} / {e['p99_ms']:.1f}")
            lines.append(f"| {label} — {plabel} | " + " | ".join(cells) + " |")
    cl = api["client"]
    lines += ["", f"Downloading one day of {cl['symbol']} ticks ({_n(cl['day_rows'])} rows) through NGINX, median of "
              f"{cl['reps']}: raw pages (http.client + json) {_n(cl['raw_pages_rows_per_s'])} rows/s, rdc_client "
              f"into a DataFrame {_n(cl['dataframe_rows_per_s'])} rows/s ({_n(cl['client_over_raw'])} x)."]
    lines += ["", "| Bytes on disk per row (table + indexes) | " + " | ".join(k for k, _ in tiers[1:]) + " |",
              "|---|" + "---:|" * (len(tiers) - 1)]
    for kind, label in (("trade", "trade"), ("quote", "quote"), ("book_update", "book update")):
        lines.append(f"| {label} | " + " | ".join(_n(v["bytes_per_row"][kind]) for _, v in tiers[1:]) + " |")
    ar = doc["archive"]
    lines += ["", f"Archive: {_n(ar['rows'])} rows of {', '.join(ar['symbols'])} ({ar['rate_per_symbol']} msgs/s each, "
              f"one day) in {ar['seconds']} s, {_n(ar['rows_per_s'])} rows/s, into {ar['files']} Parquet files; "
              f"bytes per trade {ar['bytes_per_row']['trade']}, quote {ar['bytes_per_row']['quote']}, book update "
              f"{ar['bytes_per_row']['book_update']}."]
    lines += ["", "| Target | value | limit | met |", "|---|---:|---:|:---:|"]
    labels = {"collector_50k": "Collector ingest", "collector_vs_stock": "Collector vs stock async_rithmic",
              "simulator_3x": "Simulator send vs collector", "freshness_p99": "Freshness p99 at 20,000 msgs/s",
              "api_nginx_vs_raw": "ticks p99 NGINX vs raw fetch + encode", "stats_100m": "/api/stats p99 at 100M rows",
              "client_vs_raw": "rdc_client download vs raw pages, one day of ticks",
              "console_first_render": "Console first render with data (cold, median)",
              "console_transfer": "Console JavaScript + CSS transferred", "live_p99": "/api/live p99 through NGINX",
              "live_snapshot_cost": "Ingest drop with live snapshots on",
              "archive_500k": "Archiving (PostgreSQL to verified Parquet)",
              "archive_bytes": "Archived bytes per trade/quote/book update"}
    for key, t in tg.items():
        lines.append(f"| {labels[key]} | {_n(t['value'])} {t['unit']} | {_n(t['limit'])} {t['unit']} | "
                     f"{_verdict(t['met'])} |")
    return "\n".join(lines) + "\n"


def write(doc: dict, json_path: Path, md_path: Path, update_readme: bool) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    table = markdown(doc)
    md_path.write_text(table)
    if update_readme and README.exists():
        text = README.read_text()
        pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.S)
        if pattern.search(text):
            README.write_text(pattern.sub(lambda _: f"{MARK_START}\n{table}{MARK_END}", text))
