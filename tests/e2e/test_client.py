"""rdc_client against the real stack: NGINX in front of `chalice local` over PostgreSQL rows written by
the collector's own writer. Every figure is checked against the database or the API's own answer."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import httpx
import pandas as pd
import pytest

from rdc_client import Client, RdcApiError
from tests.e2e.api_behind_nginx import REPO
from tests.e2e.conftest import RESEARCH_KEY
from tests.e2e.research import db_ticks

pytestmark = pytest.mark.e2e

HOUR = dt.timedelta(hours=1)


def _as_rows(df: pd.DataFrame) -> list[tuple]:
    return [(ts.to_pydatetime(), price, volume, None if pd.isna(direction) else direction, backfilled)
            for ts, price, volume, direction, backfilled
            in zip(df["timestamp"], df["price"], df["volume"], df["direction"], df["backfilled"], strict=True)]


def test_a_full_day_of_ticks_equals_the_database_across_pages_and_runs_of_equal_timestamps(open_api, research):
    day = research.day
    expected = db_ticks(research.url, day.symbol, day.start, day.end)
    assert len(expected) == day.trades
    with Client(open_api.url, progress=False) as rdc:
        df = rdc.ticks(day.symbol, day.start, day.end)
        pages = list(rdc.iter_frames("ticks", day.symbol, day.start.isoformat(), day.end.isoformat()))
    # Every row once, in the API's order, equal to what PostgreSQL holds; prices are distinct, so a
    # duplicated or skipped row could not hide.
    assert _as_rows(df) == expected
    assert df["price"].is_unique
    # The day's pages met runs of equal timestamps at their boundaries (the data is built that way).
    assert len(pages) == 5 and all(len(p) == 1000 for p in pages)
    assert all(pages[i]["timestamp"].iloc[-1] == pages[i + 1]["timestamp"].iloc[0] for i in range(4))
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), df)
    # The dtypes a researcher can compute with.
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    assert df.dtypes[["price", "volume", "backfilled"]].astype(str).tolist() == ["float64", "int64", "bool"]
    assert df["direction"].isna().any() and set(df["direction"].dropna()) == {"BUY", "SELL"}
    assert df["timestamp"].iloc[0] == pd.Timestamp(day.start)  # start inclusive; the row at end is not there


def test_bars_equal_the_api_bars_and_long_ranges_are_cut_on_bar_boundaries(open_api, research):
    day = research.day
    raw = httpx.get(f"{open_api.url}/api/bars/{day.symbol}",
                    params={"interval": "1m", "start": day.start.isoformat(), "end": day.end.isoformat()}).json()
    assert raw["count"] > 1000
    with Client(open_api.url, progress=False) as rdc:
        bars = rdc.bars(day.symbol, day.start, day.end, "1m")
        # Three days around it, in one-day requests: the same bars, none split or repeated.
        around = rdc.bars(day.symbol, day.start - dt.timedelta(days=1), day.end + dt.timedelta(days=1), "1m")
        hourly = rdc.bars(day.symbol, day.start + dt.timedelta(minutes=30), day.end, "1h")
    assert [(b["timestamp"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["trades"], b["buy_volume"],
             b["sell_volume"], b["vwap"]) for b in raw["data"]] == [
        (ts.isoformat(timespec="microseconds"), *rest) for ts, *rest in bars.itertuples(index=False)]
    # Around the day: its bars, and the two trades stored just outside it (one each side), once each.
    pd.testing.assert_frame_equal(around.iloc[1:-1].reset_index(drop=True), bars)
    assert around["timestamp"].iloc[[0, -1]].tolist() == [pd.Timestamp(day.start - dt.timedelta(minutes=1)),
                                                          pd.Timestamp(day.end)]
    assert around["trades"].iloc[[0, -1]].tolist() == [1, 1]
    assert hourly["trades"].sum() == len(db_ticks(research.url, day.symbol, day.start + dt.timedelta(minutes=30),
                                                  day.end))


def test_a_429_storm_from_nginx_is_ridden_out_with_no_error(open_api, research):
    day = research.day
    # Two requests a second, burst 1: every other request of a fast client is refused with a 429.
    slow = open_api.extra_nginx("nginx-2rps", rate_limit="2r/s", burst=1)
    try:
        with Client(slow.url, progress=False, backoff_base_s=0.1) as rdc:
            df = rdc.ticks(day.symbol, day.start, day.start + 2 * HOUR, limit=60)
            retries = dict(rdc.retries)
        refused = slow.access_log.read_text().count('" 429 ')
    finally:
        slow.stop()
    assert _as_rows(df) == db_ticks(research.url, day.symbol, day.start, day.start + 2 * HOUR)
    assert len(df) > 300  # six pages and more, asked for back to back
    # Refused at least once (typically every third request), each refusal retried, none reaching the caller.
    assert retries.get(429, 0) >= 1 and retries == {429: refused}


def test_a_bad_key_raises_the_client_error_with_the_api_message(keyed_api, research):
    day = research.day
    raw = httpx.get(f"{keyed_api.url}/api/ticks/{day.symbol}", headers={"x-api-key": "wrong"}).json()
    with Client(keyed_api.url, api_key="wrong", progress=False) as rdc, pytest.raises(RdcApiError) as caught:
        rdc.ticks(day.symbol, day.start, day.end)
    err = caught.value
    assert (err.status, err.error, err.message) == (403, "Invalid API key", raw["message"])
    assert err.request_id and err.request_id != raw["request_id"]  # its own request's id
    assert "wrong" not in str(err)
    with Client(keyed_api.url, progress=False) as rdc, pytest.raises(RdcApiError) as caught:
        rdc.stats()
    assert caught.value.status == 401 and "x-api-key" in caught.value.message
    with Client(keyed_api.url, api_key=RESEARCH_KEY, progress=False) as rdc:
        assert len(rdc.ticks(day.symbol, day.start, day.start + HOUR)) > 0


def test_the_service_calls(open_api, research):
    with Client(open_api.url, progress=False) as rdc:
        symbols = rdc.symbols()
        stats = rdc.stats()
        book = rdc.book("ESZ6", depth=5)
        gaps = rdc.gaps("ESZ6", research.market.start, research.market.end)
        quotes = rdc.quotes("ESZ6", research.market.start, research.market.end)
        level2 = rdc.level2("ESZ6", research.market.start, research.market.end)
        queued = rdc.subscribe("gcz6")
        subs = rdc.subscriptions()
        dropped = rdc.unsubscribe("GCZ6", "COMEX")
    assert "ESZ6" in set(symbols["symbol"]) and str(symbols["last_tick_update"].dtype) == "datetime64[us, UTC]"
    assert stats["tick_data"]["total_records"] >= research.day.trades
    assert len(book.bids) == 5 and book.bids["price"].is_monotonic_decreasing and book.asks["price"].iloc[0] > \
        book.bids["price"].iloc[0]
    assert gaps.empty and list(gaps.columns)[:2] == ["start", "end"]
    assert len(quotes) == research.market.counts["quotes"] and quotes["timestamp"].is_monotonic_increasing
    assert len(level2) == research.market.counts["level2"] - 4  # the GCZ6 snapshots are another symbol
    assert isinstance(level2["bids"].iloc[0], list) and set(level2["bids"].iloc[0][0]) == {"price", "size", "orders"}
    assert (queued["status"], queued["symbol"], queued["exchange"]) == ("subscribed", "GCZ6", "COMEX")
    assert "GCZ6" in set(subs["symbol"]) and dropped["status"] == "unsubscribed"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_command_line_writes_files_that_read_back_equal_to_the_dataframe(open_api, research, tmp_path, fmt):
    day = research.day
    start, end = day.start + 3 * HOUR, day.start + 9 * HOUR
    out = tmp_path / f"ticks.{fmt}"
    env = {**os.environ, "RDC_API_URL": open_api.url}
    env.pop("RDC_API_KEY", None)
    run = subprocess.run([sys.executable, "-m", "rdc_client", "ticks", day.symbol, "--start", start.isoformat(),
                          "--end", end.isoformat(), "--format", fmt, "-o", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert '"event": "written"' in run.stderr
    with Client(open_api.url, progress=False) as rdc:
        expected = rdc.ticks(day.symbol, start, end)
    assert len(expected) > 1000  # more than one page, written page by page
    if fmt == "parquet":
        got = pd.read_parquet(out)
        pd.testing.assert_frame_equal(got, expected)
    else:
        got = pd.read_csv(out, parse_dates=["timestamp"], dtype={"direction": "string"})
        got["timestamp"] = got["timestamp"].astype("datetime64[us, UTC]")
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert str(got["timestamp"].dtype) == "datetime64[us, UTC]"


def test_the_command_line_says_what_went_wrong_and_leaves_no_file(keyed_api, research, tmp_path):
    out = tmp_path / "bars.csv"
    env = {**os.environ, "RDC_API_URL": keyed_api.url, "RDC_API_KEY": "wrong"}
    run = subprocess.run([sys.executable, "-m", "rdc_client", "bars", research.day.symbol, "--start", "2026-11-23",
                          "--end", "2026-11-24", "-o", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert "403 Invalid API key" in run.stderr and "does not hold a valid API key" in run.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
