"""Trading hours of every catalogue product: sessions, daily halts, weekends, holidays and early
closes, in the exchange's time zone (DST included), from `pandas_market_calendars`.

The library is the source of truth; this module only turns its schedules into sorted arrays of
open intervals (epoch seconds) so that "is it open at t?" is a bisect, cheap enough for the
simulator to ask about every second it generates. Which library calendar a product follows is the
`calendar` column of the catalogue (rdc_common/products.py), the one table beside the roll rules.

Vocabulary:
- a *session* is one CME trade date: it opens the evening before (17:00 CT for most Globex
  products) and closes in the afternoon of its date;
- *closed* is the time between sessions (the daily 16:00-17:00 CT halt, weekends, holidays);
- *halted* is a scheduled pause inside a session (the grains' 07:45-08:30 CT break).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rdc_common.products import PRODUCTS, Contract, Product, contract, listed_contracts

UTC = dt.UTC
OPEN, CLOSED, HALTED = "open", "closed", "halted"
_FAR = 10 * 366 * 86400  # how far next_open/next_close look before giving up


@dataclass(frozen=True)
class MarketState:
    """Where a product's market stands at one instant."""

    status: str  # open | closed | halted
    trade_date: dt.date | None  # the session in effect (None while closed between sessions)
    next_open: float | None  # epoch seconds of the next open (None while open)
    next_close: float | None  # epoch seconds of the next close or halt (None while not open)

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    def next_change(self) -> float | None:
        return self.next_close if self.status == OPEN else self.next_open

    def as_json(self) -> dict:
        def iso(t: float | None) -> str | None:
            return dt.datetime.fromtimestamp(t, UTC).isoformat() if t is not None else None

        return {"market": self.status, "trade_date": self.trade_date.isoformat() if self.trade_date else None,
                "next_open": iso(self.next_open), "next_close": iso(self.next_close)}


class MarketHours:
    """One library calendar's open intervals, loaded a few years at a time as they are asked for."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._years: set[int] = set()
        # Parallel sorted arrays, one entry per open interval (a session with a break is two).
        self._opens: list[float] = []
        self._closes: list[float] = []
        self._dates: list[dt.date] = []  # the session (trade date) each interval belongs to
        self._session_opens: dict[dt.date, float] = {}
        self._session_closes: dict[dt.date, float] = {}

    # -- loading --------------------------------------------------------------------------
    def _ensure(self, t: float) -> None:
        year = dt.datetime.fromtimestamp(t, UTC).year
        # A session labelled 2 January opens on 1 January; one at year end closes after it.
        wanted = {year - 1, year, year + 1}
        if wanted <= self._years:
            return
        with self._lock:
            for y in sorted(wanted - self._years):
                self._load(y)

    def _load(self, year: int) -> None:
        intervals, opens, closes = _schedule(self.name, year)
        self._session_opens.update(opens)
        self._session_closes.update(closes)
        merged = sorted(set(zip(self._opens, self._closes, self._dates, strict=True)) | set(intervals))
        self._opens = [i[0] for i in merged]
        self._closes = [i[1] for i in merged]
        self._dates = [i[2] for i in merged]
        self._years.add(year)

    # -- questions ------------------------------------------------------------------------
    def _interval(self, t: float) -> int:
        """Index of the last interval opening at or before t (-1 when none)."""
        self._ensure(t)
        return bisect.bisect_right(self._opens, t) - 1

    def is_open(self, t: float) -> bool:
        i = self._interval(t)
        return i >= 0 and t < self._closes[i]

    def state(self, t: float) -> MarketState:
        i = self._interval(t)
        if i >= 0 and t < self._closes[i]:
            return MarketState(OPEN, self._dates[i], None, self._closes[i])
        nxt = self.next_open(t)
        # Inside a session, between its two intervals: a scheduled halt, not a close.
        if i >= 0 and i + 1 < len(self._opens) and self._dates[i + 1] == self._dates[i] and nxt == self._opens[i + 1]:
            return MarketState(HALTED, self._dates[i], nxt, None)
        return MarketState(CLOSED, None, nxt, None)

    def next_open(self, t: float) -> float | None:
        """t itself when open, else the next instant the market opens."""
        limit = t + _FAR
        probe = t
        while probe < limit:
            i = self._interval(probe)
            if i >= 0 and probe < self._closes[i]:
                return probe if probe == t else self._opens[i]
            if i + 1 < len(self._opens):
                return self._opens[i + 1]
            probe = dt.datetime(dt.datetime.fromtimestamp(probe, UTC).year + 1, 1, 1, tzinfo=UTC).timestamp()
        return None

    def prev_close(self, t: float) -> float | None:
        """The end of the last open interval that ended at or before t (None when none is known)."""
        i = self._interval(t)  # loads the year before t as well, so a close is always found
        if i >= 0 and t < self._closes[i]:
            i -= 1  # t is inside interval i: the one before it
        return self._closes[i] if i >= 0 else None

    def session_open_at(self, t: float) -> float | None:
        """The open of the session t belongs to (the last one that opened at or before t)."""
        i = self._interval(t)
        return self._session_opens[self._dates[i]] if i >= 0 else None

    def next_close(self, t: float) -> float | None:
        """The end of the open interval t is in, or of the next one."""
        start = self.next_open(t)
        if start is None:
            return None
        return self._closes[self._interval(start)]

    def open_intervals(self, start: float, end: float) -> list[tuple[float, float]]:
        """The open intervals overlapping [start, end), clipped to it."""
        out = []
        i = max(self._interval(start), 0)
        self._ensure(end)
        while i < len(self._opens) and self._opens[i] < end:
            lo, hi = max(self._opens[i], start), min(self._closes[i], end)
            if lo < hi:
                out.append((lo, hi))
            i += 1
        return out

    def session_open(self, trade_date: dt.date) -> float | None:
        """When the session of `trade_date` opens (the evening before), None if there is none."""
        self._ensure(dt.datetime(trade_date.year, trade_date.month, trade_date.day, tzinfo=UTC).timestamp())
        return self._session_opens.get(trade_date)

    def session_close(self, trade_date: dt.date) -> float | None:
        self._ensure(dt.datetime(trade_date.year, trade_date.month, trade_date.day, tzinfo=UTC).timestamp())
        return self._session_closes.get(trade_date)

    def first_session_on_or_after(self, day: dt.date) -> dt.date:
        """The first trade date at or after `day` (a roll or expiry date on a holiday moves forward)."""
        for k in range(0, 30):
            d = day + dt.timedelta(days=k)
            if self.session_open(d) is not None:
                return d
        raise ValueError(f"{self.name} has no session within 30 days after {day}")

    def last_session_on_or_before(self, day: dt.date) -> dt.date:
        for k in range(0, 30):
            d = day - dt.timedelta(days=k)
            if self.session_open(d) is not None:
                return d
        raise ValueError(f"{self.name} has no session within 30 days before {day}")


def _library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pmc{version('pandas_market_calendars')}-xc{version('exchange_calendars')}"
    except PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path:
    """Where computed schedules are kept: RDC_CALENDAR_CACHE, else the user's cache directory."""
    configured = os.environ.get("RDC_CALENDAR_CACHE", "").strip()
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rithmic-data-collector" / "calendars"


def bundle_dir() -> Path:
    """Schedules written down at packaging time (`write_bundle`), for a runtime without the library:
    RDC_CALENDAR_BUNDLE, else `calendar_bundle/` beside this module (where the Lambda package has it)."""
    configured = os.environ.get("RDC_CALENDAR_BUNDLE", "").strip()
    return Path(configured) if configured else Path(__file__).with_name("calendar_bundle")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, doc: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)  # whole or not at all, for the processes reading it concurrently
    except OSError:
        pass  # a read-only home (Lambda): compute again next time


def _schedule(name: str, year: int):
    """The library's schedule of `name` for the sessions of one year, as (open, close, trade date)
    intervals plus session opens/closes by trade date.

    Computing it imports pandas and the calendars (about a second) and every process asks for the
    same few years, so the result is kept on disk, keyed by the library versions: the library stays
    the one source of truth, the file is only its answer written down. A runtime packaged without the
    library (the API's Lambda) reads the bundle written when it was packaged.
    """
    path = cache_dir() / _library_versions() / f"{name}-{year}.json"
    doc = _read(path) or _read(bundle_dir() / f"{name}-{year}.json")
    if doc is None:
        doc = _compute_schedules(name, year, year)[year]
        _write(path, doc)
    day = dt.date.fromisoformat
    intervals = [(o, c, day(d)) for o, c, d in doc["intervals"]]
    return intervals, {day(d): t for d, t in doc["opens"].items()}, {day(d): t for d, t in doc["closes"].items()}


def _compute_schedules(name: str, first_year: int, last_year: int) -> dict[int, dict]:
    """One schedule document per year (sessions by the year of their trade date), from one library call."""
    import pandas_market_calendars as mcal  # pandas: loaded only when no cached answer exists

    cal = mcal.get_calendar(name)
    sched = cal.schedule(start_date=f"{first_year}-01-01", end_date=f"{last_year}-12-31")
    docs = {y: {"calendar": name, "intervals": [], "opens": {}, "closes": {}} for y in range(first_year, last_year + 1)}
    has_break = "break_start" in sched.columns
    for label, row in zip(sched.index, sched.itertuples(index=False), strict=True):
        doc = docs[label.year]
        intervals, opens, closes = doc["intervals"], doc["opens"], doc["closes"]
        day = label.date().isoformat()
        o, c = row.market_open.timestamp(), row.market_close.timestamp()
        opens[day], closes[day] = o, c
        if has_break:
            b0, b1 = row.break_start, row.break_end
            if b0 == b0 and b1 == b1 and b0 < b1:  # NaT != NaT; a zero-length break is no break
                intervals.append((o, b0.timestamp(), day))
                intervals.append((b1.timestamp(), c, day))
                continue
        intervals.append((o, c, day))
    return docs


# The years `write_bundle` writes down by default: a deployed API resolves continuous symbols and
# schedules rolls without the library for instants in these years but the first and the last (an
# instant needs the years either side of its own: a session can open in the year before its date).
BUNDLE_YEARS = (2020, 2040)


def write_bundle(directory: Path, first_year: int = BUNDLE_YEARS[0], last_year: int = BUNDLE_YEARS[1]) -> int:
    """Write the schedules of every catalogue calendar for [first_year, last_year] into `directory`
    (read back by `_schedule` through RDC_CALENDAR_BUNDLE or calendar_bundle/). Years already in the
    on-disk cache are copied from it; the rest take one library call per calendar. Returns files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    versions = _library_versions()
    written = 0
    for name in sorted({p.calendar for p in PRODUCTS.values()}):
        years = range(first_year, last_year + 1)
        docs = {y: _read(cache_dir() / versions / f"{name}-{y}.json") for y in years}
        missing = [y for y, doc in docs.items() if doc is None]
        if missing:
            computed = _compute_schedules(name, min(missing), max(missing))
            for y in missing:
                docs[y] = computed[y]
                _write(cache_dir() / versions / f"{name}-{y}.json", computed[y])
        for y, doc in docs.items():
            (directory / f"{name}-{y}.json").write_text(json.dumps(doc, separators=(",", ":")))
            written += 1
    return written


def warm(products=None, around: float | None = None) -> None:
    """Load the hours of `products` (default: the whole catalogue) around instant `around` now, so
    the first question asked later does not pay for it (the simulator calls this before listening)."""
    import time

    t = time.time() if around is None else around
    for p in (products or PRODUCTS.values()):
        hours(p)._ensure(t)


@cache
def _hours(name: str) -> MarketHours:
    return MarketHours(name)


def hours(product: Product | str) -> MarketHours:
    """The trading hours of a catalogue product (or product code)."""
    p = PRODUCTS[product] if isinstance(product, str) else product
    return _hours(p.calendar)


def roll_instant(product: Product | str, roll_date: dt.date) -> float:
    """When the new contract becomes the front month: the open of the session whose trade date is
    the roll date (CME's trade date starts the evening before), or of the next session when the
    roll date has none."""
    h = hours(product)
    return h.session_open(h.first_session_on_or_after(roll_date))


def expiry_instant(product: Product | str, expiry: dt.date) -> float:
    """When a contract stops trading: the close of the session of its last trading day.

    The catalogue's last trading days are CME's; the exact minute trading ends on that day varies
    by product (08:30 CT for equity index futures' special opening quotation, for instance). We end
    recording at that session's close per the product's calendar: a few hours of a contract that
    trades nothing cost nothing, while stopping early would lose its last trades.
    """
    h = hours(product)
    return h.session_close(h.last_session_on_or_before(expiry))


def front_contract(product: Product | str, t: float) -> Contract:
    """The product's front month at instant `t`: the nearest contract whose roll instant is after t."""
    p = PRODUCTS[product] if isinstance(product, str) else product
    day = dt.datetime.fromtimestamp(t, UTC).date()
    for c in listed_contracts(p, day - dt.timedelta(days=1), months_ahead=24):
        if t < roll_instant(p, c.roll_date):
            return c
    raise AssertionError("every product lists a contract within 24 months")


def is_expired(c: Contract, t: float) -> bool:
    """Whether contract `c` has stopped trading at instant `t`."""
    return t >= expiry_instant(c.product, c.expiry)


def contract_at(symbol: str, t: float) -> Contract:
    """The catalogue contract `symbol` names, its year read as the one nearest to instant `t`."""
    return contract(symbol, dt.datetime.fromtimestamp(t, UTC).date())


def main(argv: list[str] | None = None) -> int:
    """`python -m rdc_common.calendar bundle DIR [--years 2020-2040]`: write the bundle a package
    without pandas_market_calendars (the API's Lambda) reads."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rdc_common.calendar")
    sub = parser.add_subparsers(dest="command", required=True)
    bundle = sub.add_parser("bundle", help="write every catalogue calendar's schedules for a range of years")
    bundle.add_argument("directory", type=Path)
    bundle.add_argument("--years", default=f"{BUNDLE_YEARS[0]}-{BUNDLE_YEARS[1]}",
                        help="first-last, inclusive (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        first, last = (int(x) for x in args.years.split("-"))
    except ValueError:
        parser.error(f"--years must be two years such as 2020-2040, not {args.years!r}")
    if not 1900 <= first <= last <= 2200:
        parser.error(f"--years must run forwards within 1900-2200, not {args.years!r}")
    n = write_bundle(args.directory, first, last)
    print(f"wrote {n} schedules ({first}-{last}) to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
