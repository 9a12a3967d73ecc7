"""rdc_client's pure parts: times, windows, dtypes, and how it waits between retries (the HTTP answers
come from an httpx transport in this process; the real API and NGINX are in tests/e2e/test_client.py)."""

from __future__ import annotations

import datetime as dt

import httpx
import pandas as pd
import pytest

from rdc_client import Client, RdcApiError, frames, parse_time
from rdc_client.client import BARS_ORIGIN, _windows

pytestmark = pytest.mark.unit

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    ("2026-11-23", T0),
    ("2026-11-23T00:00:00Z", T0),
    ("2026-11-23T01:00:00+01:00", T0),
    ("2026-11-23T00:00:00", T0),  # naive: UTC
    (dt.date(2026, 11, 23), T0),
    (pd.Timestamp("2026-11-22 19:00", tz="America/New_York"), T0),
    (dt.datetime(2026, 11, 23), T0),
])
def test_times_in_every_form_mean_the_same_utc_instant(value, expected):
    assert parse_time(value) == expected


def test_a_bad_time_says_what_is_accepted():
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday", "start")
    with pytest.raises(TypeError, match="datetime"):
        parse_time(1795530600, "start")  # type: ignore[arg-type]


def test_windows_cover_the_range_once_and_bar_windows_fall_on_bar_boundaries():
    day = dt.timedelta(days=1)
    start, end = T0 + dt.timedelta(hours=5, minutes=30), T0 + dt.timedelta(days=3, hours=2)
    plain = _windows(start, end, day)
    assert plain[0][0] == start and plain[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(plain, plain[1:], strict=False))
    aligned = _windows(start, end, day, BARS_ORIGIN)
    assert aligned[0] == (start, T0 + day) and aligned[-1] == (T0 + 3 * day, end)
    assert all((hi - BARS_ORIGIN) % day == dt.timedelta(0) for _, hi in aligned[:-1])
    with pytest.raises(ValueError, match="before end"):
        _windows(end, start, day)


def test_frames_have_proper_dtypes_even_when_empty():
    rows = [{"timestamp": "2026-11-23T00:00:00.000001+00:00", "symbol": "CLF7", "price": 60.0, "volume": 2,
             "direction": None, "trade_type": "trade", "exchange": "NYMEX", "backfilled": False, "extra": 1}]
    full, empty = frames.frame(rows, frames.TICKS), frames.frame([], frames.TICKS)
    assert list(full.columns) == list(frames.TICKS.columns)  # unknown fields left out
    assert full.dtypes.astype(str).tolist() == empty.dtypes.astype(str).tolist() == [
        "datetime64[us, UTC]", "string", "float64", "int64", "string", "string", "string", "bool"]
    assert full["timestamp"].iloc[0] == pd.Timestamp("2026-11-23T00:00:00.000001Z") and pd.isna(full["direction"][0])
    quotes = frames.frame([{"timestamp": "2026-11-23T00:00:00+00:00", "bid_price": None, "bid_size": None}],
                          frames.QUOTES)
    assert pd.isna(quotes["bid_price"][0]) and quotes["bid_size"].dtype == "Int64"


def _client(answers: list, sleeps: list[float], **kw) -> Client:
    """A Client whose transport replays `answers` (responses, or exceptions to raise) in order."""
    calls = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://api.invalid", transport=httpx.MockTransport(handle), sleep=sleeps.append, **kw)


def _error(status: int, headers: dict | None = None, rid: str | None = "r1") -> httpx.Response:
    body = {"error": "Too Many Requests", "message": "slow down"}
    if rid:
        body["request_id"] = rid
    return httpx.Response(status, json=body, headers=headers or {})


def test_retry_after_is_honoured_with_a_little_jitter_and_the_retries_are_counted():
    sleeps: list[float] = []
    ok = httpx.Response(200, json={"tick_data": {}})
    rdc = _client([_error(429, {"Retry-After": "3"}), _error(503, {"Retry-After": "1"}), ok], sleeps,
                  backoff_base_s=0.5)
    assert rdc.stats() == {"tick_data": {}}
    assert 3 <= sleeps[0] <= 3.5 and 1 <= sleeps[1] <= 1.5
    assert rdc.retries == {429: 1, 503: 1}


def test_without_retry_after_the_backoff_grows_exponentially_up_to_its_cap():
    sleeps: list[float] = []
    answers = [_error(502) for _ in range(6)] + [httpx.Response(200, json={})]
    rdc = _client(answers, sleeps, backoff_base_s=1.0, backoff_max_s=4.0)
    rdc.stats()
    caps = [1, 2, 4, 4, 4, 4]
    assert len(sleeps) == 6 and all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_a_dropped_connection_is_retried_and_in_the_end_becomes_the_one_error():
    sleeps: list[float] = []
    rdc = _client([httpx.ConnectError("refused")] * 3, sleeps, max_retries=2)
    with pytest.raises(RdcApiError) as caught:
        rdc.stats()
    assert caught.value.status is None and caught.value.error == "Connection failed"
    assert "base_url" in caught.value.message and rdc.retries == {0: 2}


def test_errors_that_retrying_cannot_fix_raise_at_once_with_the_api_fields():
    sleeps: list[float] = []
    body = {"error": "Invalid symbol", "message": "use ESZ6", "request_id": "abc"}
    rdc = _client([httpx.Response(400, json=body)], sleeps)
    with pytest.raises(RdcApiError) as caught:
        rdc.ticks("ES", T0, T0 + dt.timedelta(hours=1), progress=False)
    err = caught.value
    assert (err.status, err.error, err.message, err.request_id) == (400, "Invalid symbol", "use ESZ6", "abc")
    assert sleeps == [] and "400 Invalid symbol: use ESZ6 (request_id abc)" in str(err)


def test_a_retry_after_longer_than_allowed_raises_instead_of_waiting():
    sleeps: list[float] = []
    rdc = _client([_error(429, {"Retry-After": "3600"})], sleeps, max_retry_after_s=120)
    with pytest.raises(RdcApiError, match="wait 3600 s"):
        rdc.stats()
    assert sleeps == []


def test_an_answer_from_a_proxy_that_is_not_json_still_makes_the_one_error():
    rdc = _client([httpx.Response(404, text="<html>nope</html>")], [])
    with pytest.raises(RdcApiError) as caught:
        rdc.symbols()
    assert caught.value.status == 404 and caught.value.error == "Not Found" and "nope" in caught.value.message


def test_symbols_are_passed_through_unchanged_so_continuous_symbols_work_when_the_api_has_them():
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    rdc = Client("http://api.invalid/stage", transport=httpx.MockTransport(handle), progress=False)
    assert rdc.ticks("ES.c.0", T0, T0 + dt.timedelta(hours=1)).empty
    assert seen[0].startswith("/stage/api/ticks/ES.c.0?")
