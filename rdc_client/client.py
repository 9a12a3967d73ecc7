"""`Client`: the RithmicDataCollector REST API from Python, as DataFrames.

It pages for you (following `next_cursor` to the end of the range, and cutting ranges longer than
the API serves at once into windows), shows progress on long downloads, retries politely (429,
502, 503, 504 and dropped connections, with exponential backoff and jitter, honouring
`Retry-After`), and turns every error into one exception, `RdcApiError`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

import httpx
import pandas as pd

from . import frames
from .errors import RdcApiError
from .progress import progress_for

__all__ = ["Book", "Client", "TimeLike", "parse_time"]

UTC = dt.UTC
TimeLike = dt.datetime | dt.date | pd.Timestamp | str
RETRY_STATUSES = frozenset((429, 502, 503, 504))
# date_bin's origin in the API's bars query: window edges on multiples of the bar width from here
# never cut a bar in two.
BARS_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=UTC)
INTERVALS = {"1s": dt.timedelta(seconds=1), "1m": dt.timedelta(minutes=1), "5m": dt.timedelta(minutes=5),
             "15m": dt.timedelta(minutes=15), "1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}
MAX_LIMITS = {"ticks": 1000, "quotes": 1000, "level2": 500}
USER_AGENT = "rdc-client/2.0"


def parse_time(value: TimeLike, name: str = "time") -> dt.datetime:
    """A tz-aware UTC datetime from a datetime, a date (its midnight UTC), a pandas Timestamp or a
    string (ISO-8601, or a date). Naive times are taken as UTC."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO-8601 time such as 2026-11-24T14:30:00Z or a date "
                             f"such as 2026-11-24") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime, a date, a pandas Timestamp or an ISO-8601 string, "
                        f"not {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _windows(start: dt.datetime, end: dt.datetime, width: dt.timedelta,
             origin: dt.datetime | None = None) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut into windows no wider than `width`; with `origin`, the inner edges fall on
    origin + k * width."""
    if start >= end:
        raise ValueError(f"start ({_iso(start)}) must be before end ({_iso(end)}): start is inclusive, end exclusive")
    out = []
    edge = start
    if origin is not None:
        steps = (start - origin) // width
        edge = origin + steps * width
    lo = start
    while lo < end:
        hi = min(edge + width, end) if origin is not None else min(lo + width, end)
        out.append((lo, hi))
        lo = hi
        edge = hi
    return out


@dataclass(frozen=True)
class Book:
    """The order book at an instant: each side's levels, best first, and where it was rebuilt from."""

    symbol: str
    at: pd.Timestamp
    as_of: pd.Timestamp
    snapshot_at: pd.Timestamp
    messages_applied: int
    bids: pd.DataFrame
    asks: pd.DataFrame


class Client:
    """The RithmicDataCollector API at `base_url` (``http://127.0.0.1:8080`` under ``make run``, the
    stage URL in AWS), with `api_key` sent as ``x-api-key`` when given.

    Range methods (`ticks`, `quotes`, `level2`, `bars`, `gaps`) take `start` (inclusive) and `end`
    (exclusive) as datetimes, dates, pandas Timestamps or ISO-8601 strings (naive means UTC) and
    return DataFrames with tz-aware UTC timestamps, oldest first. Symbols are passed to the API as
    given (``ESZ6``, ``esz6``, or a continuous symbol such as ``ES.c.0`` where the API serves them).

    Use it as a context manager, or call `close()`, to release its connections.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0, max_retries: int = 8,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, max_retry_after_s: float = 120.0,
                 range_days: int = 1, daily_bars_range_days: int = 365, progress: bool | None = None,
                 progress_stream: IO[str] | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """
        Args:
            base_url: where the API is, e.g. ``http://127.0.0.1:8080``.
            api_key: sent as the ``x-api-key`` header; None sends none.
            timeout: seconds for each HTTP request.
            max_retries: retries of one request after a 429/502/503/504 or a dropped connection.
            backoff_base_s, backoff_max_s: exponential backoff with full jitter when the server gives no
                ``Retry-After``: a random wait up to min(backoff_max_s, backoff_base_s * 2 ** attempt).
            max_retry_after_s: a ``Retry-After`` longer than this raises instead of waiting.
            range_days: the widest window asked for in one request of rows or intraday bars (the API
                serves at most API_MAX_RANGE_DAYS, 7 by default).
            daily_bars_range_days: the same for 1d bars (API_MAX_DAILY_BARS_RANGE_DAYS, 366 by default).
            progress: None shows progress on long downloads (a bar on a terminal or in a notebook, JSON
                lines on stderr otherwise); False never; the range methods can override it.
            progress_stream: where progress goes (stderr by default).
            transport: an httpx transport (tests, proxies).
            sleep: how to wait between retries (tests).
        """
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.range = dt.timedelta(days=range_days)
        self.daily_bars_range = dt.timedelta(days=daily_bars_range_days)
        self.progress = progress
        self.progress_stream = progress_stream
        self._sleep = sleep
        #: Retries made so far, by HTTP status (0: the connection failed): how throttled this client was.
        self.retries: Counter[int] = Counter()

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP -----------------------------------------------------------------------------

    def _wait_s(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = _retry_after_s(response) if response is not None else None
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                raise RdcApiError.from_response(response, extra=f"the server asks to wait {retry_after:.0f} s "
                                                                f"(Retry-After), more than max_retry_after_s")
            # A little jitter, so that throttled clients do not all come back in the same instant.
            return retry_after + random.uniform(0, self.backoff_base_s)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt))

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                json: Any = None) -> dict[str, Any]:
        """One API call with retries; the decoded JSON body, or RdcApiError."""
        attempt = 0
        while True:
            response = None
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise RdcApiError(None, "Connection failed", f"{method} {self.base_url}{path}: {exc}; check "
                                      f"base_url and that the API is running", None, method,
                                      f"{self.base_url}{path}") from exc
                self.retries[0] += 1
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise RdcApiError.from_response(response, extra="the answer is not JSON") from None
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise RdcApiError.from_response(response)
                self.retries[response.status_code] += 1
            self._sleep(self._wait_s(attempt, response))
            attempt += 1

    @staticmethod
    def _path(route: str, symbol: str) -> str:
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValueError("symbol must be a non-empty string such as ESZ6")
        return f"/api/{route}/{quote(symbol.strip(), safe='')}"

    # -- rows: ticks, quotes, level2 ------------------------------------------------------

    def iter_pages(self, kind: str, symbol: str, start: TimeLike, end: TimeLike, *, limit: int | None = None,
                   progress: bool | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of `kind` rows (``ticks``, ``quotes`` or ``level2``) in [start, end), oldest first,
        as the API's JSON rows: for ranges too big to hold, or to write as they come."""
        if kind not in MAX_LIMITS:
            raise ValueError(f"kind must be one of {', '.join(MAX_LIMITS)}, not {kind!r}")
        lo, hi = parse_time(start, "start"), parse_time(end, "end")
        limit = MAX_LIMITS[kind] if limit is None else limit
        path = self._path(kind, symbol)
        total_s = (hi - lo).total_seconds()
        bar = progress_for(f"{kind} {symbol}", total_s, self.progress if progress is None else progress,
                           self.progress_stream)
        rows = 0
        try:
            for w_start, w_end in _windows(lo, hi, self.range):
                params: dict[str, Any] = {"start": _iso(w_start), "end": _iso(w_end), "order": "asc", "limit": limit}
                while True:
                    body = self.request("GET", path, params)
                    data = body["data"]
                    rows += len(data)
                    if data:
                        last = dt.datetime.fromisoformat(data[-1]["timestamp"])
                        bar.update((last - lo).total_seconds(), rows)
                        yield data
                    cursor = body.get("next_cursor")
                    if not cursor:
                        break
                    params = {"cursor": cursor, "limit": limit}
                bar.update((w_end - lo).total_seconds(), rows)
        finally:
            bar.close()

    def iter_frames(self, kind: str, symbol: str, start: TimeLike, end: TimeLike, *, limit: int | None = None,
                    progress: bool | None = None) -> Iterator[pd.DataFrame]:
        """`iter_pages` as one DataFrame per page, with the same columns and dtypes as `ticks` etc.

        The next page downloads (in a thread) while this one is turned into a DataFrame and used, so
        the conversion costs no time while the API is working on the next page.
        """
        shape = frames.ROW_SHAPES[kind] if kind in frames.ROW_SHAPES else None
        if shape is None:
            raise ValueError(f"kind must be one of {', '.join(MAX_LIMITS)}, not {kind!r}")
        pages = self.iter_pages(kind, symbol, start, end, limit=limit, progress=progress)
        for page in _prefetched(pages, depth=2):
            yield frames.frame(page, shape)

    def _rows(self, kind: str, symbol: str, start: TimeLike, end: TimeLike, limit: int | None,
              progress: bool | None) -> pd.DataFrame:
        return frames.concat(self.iter_frames(kind, symbol, start, end, limit=limit, progress=progress),
                             frames.ROW_SHAPES[kind])

    def ticks(self, symbol: str, start: TimeLike, end: TimeLike, *, limit: int | None = None,
              progress: bool | None = None) -> pd.DataFrame:
        """Every trade in [start, end), oldest first: timestamp (the exchange's, UTC), symbol, price,
        volume (contracts), direction (aggressor BUY/SELL, <NA> when not given), trade_type, exchange,
        backfilled."""
        return self._rows("ticks", symbol, start, end, limit, progress)

    def quotes(self, symbol: str, start: TimeLike, end: TimeLike, *, limit: int | None = None,
               progress: bool | None = None) -> pd.DataFrame:
        """Every best bid/offer row in [start, end), oldest first (each row the full BBO at that instant)."""
        return self._rows("quotes", symbol, start, end, limit, progress)

    def level2(self, symbol: str, start: TimeLike, end: TimeLike, *, limit: int | None = None,
               progress: bool | None = None) -> pd.DataFrame:
        """Every order-book message in [start, end), oldest first; bids and asks hold lists of
        {price, size, orders}."""
        return self._rows("level2", symbol, start, end, limit, progress)

    # -- derived views ----------------------------------------------------------------------

    def bars(self, symbol: str, start: TimeLike, end: TimeLike, interval: str = "1m", *,
             progress: bool | None = None) -> pd.DataFrame:
        """OHLCV bars of `interval` (1s, 1m, 5m, 15m, 1h, 1d) over [start, end), oldest first; buckets
        without trades are left out. Ranges longer than one request are cut on bar boundaries."""
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
        lo, hi = parse_time(start, "start"), parse_time(end, "end")
        width = INTERVALS[interval]
        span = self.daily_bars_range if interval == "1d" else self.range
        span = max(width, span // width * width)
        path = self._path("bars", symbol)
        bar = progress_for(f"bars {interval} {symbol}", (hi - lo).total_seconds(),
                           self.progress if progress is None else progress, self.progress_stream)
        parts = []
        try:
            for w_start, w_end in _windows(lo, hi, span, BARS_ORIGIN):
                body = self.request("GET", path, {"interval": interval, "start": _iso(w_start), "end": _iso(w_end)})
                parts.append(frames.frame(body["data"], frames.BARS))
                bar.update((w_end - lo).total_seconds(), sum(len(p) for p in parts))
        finally:
            bar.close()
        return frames.concat(parts, frames.BARS)

    def book(self, symbol: str, at: TimeLike | None = None, depth: int = 10) -> Book:
        """The order book as it stood at `at` (default: now), `depth` levels a side."""
        params: dict[str, Any] = {"depth": depth}
        if at is not None:
            params["at"] = _iso(parse_time(at, "at"))
        body = self.request("GET", self._path("book", symbol), params)
        return Book(symbol=body["symbol"], at=pd.Timestamp(body["at"]), as_of=pd.Timestamp(body["as_of"]),
                    snapshot_at=pd.Timestamp(body["snapshot_at"]), messages_applied=body["messages_applied"],
                    bids=frames.levels(body["bids"]), asks=frames.levels(body["asks"]))

    def gaps(self, symbol: str, start: TimeLike, end: TimeLike) -> pd.DataFrame:
        """Recorded outages of the stream overlapping [start, end): cause, rows dropped, and whether
        their trades were backfilled."""
        lo, hi = parse_time(start, "start"), parse_time(end, "end")
        path = self._path("gaps", symbol)
        rows: dict[tuple, dict[str, Any]] = {}
        for w_start, w_end in _windows(lo, hi, self.range):
            for gap in self.request("GET", path, {"start": _iso(w_start), "end": _iso(w_end)})["data"]:
                # A gap spanning two windows is listed by both.
                rows.setdefault((gap["start"], gap["cause"], gap["recorded_at"]), gap)
        return frames.frame(sorted(rows.values(), key=lambda g: g["start"]), frames.GAPS)

    # -- the service ------------------------------------------------------------------------

    def symbols(self) -> pd.DataFrame:
        """Symbols with data in the last 24 hours, with their counts and last update times."""
        return frames.frame(self.request("GET", "/api/symbols")["symbols"], frames.SYMBOLS)

    def stats(self) -> dict[str, Any]:
        """Row counts and time spans per table, as the API gives them."""
        return self.request("GET", "/api/stats")

    def subscriptions(self) -> pd.DataFrame:
        """The desired subscription set with the collector's status for each."""
        return frames.frame(self.request("GET", "/api/subscriptions")["subscriptions"], frames.SUBSCRIPTIONS)

    def subscribe(self, symbol: str, exchange: str | None = None) -> dict[str, Any]:
        """Ask the collector to record `symbol` (the exchange is inferred from the product when None)."""
        body = {"exchange": exchange} if exchange else None
        return self.request("POST", f"/api/subscribe/{quote(symbol.strip(), safe='')}", json=body)

    def unsubscribe(self, symbol: str, exchange: str | None = None) -> dict[str, Any]:
        """Ask the collector to stop recording `symbol`."""
        body = {"exchange": exchange} if exchange else None
        return self.request("DELETE", f"/api/subscribe/{quote(symbol.strip(), safe='')}", json=body)


_DONE = object()


def _prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """`items`, produced by a thread up to `depth` ahead of the consumer. Its exceptions are raised
    here; stopping early (break, an exception, close()) stops the thread at its next item."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        out.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            out.put((_DONE, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the generator's own finally (its progress bar) runs in this thread

    worker = threading.Thread(target=produce, name="rdc-client-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = out.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                out.get_nowait()  # unblock a put waiting on a full queue
            except queue.Empty:
                worker.join(timeout=0.05)


def _retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - dt.datetime.now(UTC)).total_seconds())
