"""The one clock every process reads "now" from (simulator, collector, API, `make run`).

It is the real clock unless `RDC_CLOCK_START` is set. Then simulated time starts at that instant
and runs `RDC_CLOCK_SPEED` times faster than real time, on one timeline shared by processes started
seconds apart: the simulated instant is `START + (real now - ANCHOR) * SPEED`, where
`RDC_CLOCK_ANCHOR` (real Unix seconds) is set once by whoever starts the processes and passed to
all of them. That is how a demo or a test starts on a Friday at 15:55 Chicago time and watches the
weekend close in a minute, whatever the real date is.

Only decisions about the market use it: what is listed, front or expired, whether a market is open,
what a trade's day is. Protocol timers (heartbeats, socket timeouts, backoff of a broken connection)
stay on real time, because the peer on the other end of the socket does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Mapping

UTC = dt.UTC
ENV_START, ENV_SPEED, ENV_ANCHOR = "RDC_CLOCK_START", "RDC_CLOCK_SPEED", "RDC_CLOCK_ANCHOR"
CLOCK_VARIABLES = (ENV_START, ENV_SPEED, ENV_ANCHOR)
MAX_SPEED = 1_000_000.0
# A Tuesday, 09:00 in Chicago, with CME open and nothing rolling that week: where the test suite and
# the benchmarks pin their clock, so what they measure never depends on the day they run.
OPEN_INSTANT = "2026-11-24T15:00:00+00:00"


class ClockError(ValueError):
    """A clock setting that cannot work; the message names the variable."""


class Clock:
    """Wall-clock time of the market. Subclasses define `now()`; the rest derives from it."""

    speed: float = 1.0

    def now(self) -> float:
        """Seconds since the Unix epoch, as a float."""
        raise NotImplementedError

    def now_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), UTC)

    def today(self) -> dt.date:
        """The UTC date of `now()`."""
        return self.now_dt().date()

    def real_seconds(self, clock_seconds: float) -> float:
        """How long to really wait for `clock_seconds` of this clock's time to pass."""
        return max(0.0, clock_seconds) / self.speed

    def clock_seconds(self, real_seconds: float) -> float:
        """How much of this clock's time passes in `real_seconds` of real time."""
        return real_seconds * self.speed

    async def sleep(self, clock_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(clock_seconds))

    async def sleep_until(self, instant: float) -> None:
        await asyncio.sleep(self.real_seconds(instant - self.now()))

    def env(self) -> dict[str, str]:
        """The variables that give a child process this same timeline (empty for the real clock)."""
        return {}

    @property
    def simulated(self) -> bool:
        return False


class LiveClock(Clock):
    """The real clock (production)."""

    def now(self) -> float:
        return time.time()

    def now_dt(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def __repr__(self) -> str:
        return "LiveClock()"


class ScaledClock(Clock):
    """Simulated time: `start + (real now - anchor) * speed`."""

    def __init__(self, start: float, speed: float = 1.0, anchor: float | None = None):
        if not speed > 0:
            raise ClockError(f"{ENV_SPEED} must be a number above 0, not {speed!r}")
        self.start = float(start)
        self.speed = float(speed)
        self.anchor = time.time() if anchor is None else float(anchor)

    def now(self) -> float:
        return self.start + (time.time() - self.anchor) * self.speed

    def env(self) -> dict[str, str]:
        return {
            ENV_START: dt.datetime.fromtimestamp(self.start, UTC).isoformat(),
            ENV_SPEED: repr(self.speed),
            ENV_ANCHOR: repr(self.anchor),
        }

    @property
    def simulated(self) -> bool:
        return True

    def __repr__(self) -> str:
        start = dt.datetime.fromtimestamp(self.start, UTC).isoformat()
        return f"ScaledClock(start={start}, speed={self.speed}, anchor={self.anchor})"


class ManualClock(Clock):
    """A clock that moves only when told (unit tests of code that takes a clock)."""

    def __init__(self, start: float | dt.datetime):
        self._now = start.timestamp() if isinstance(start, dt.datetime) else float(start)

    def now(self) -> float:
        return self._now

    def set(self, instant: float | dt.datetime) -> None:
        self._now = instant.timestamp() if isinstance(instant, dt.datetime) else float(instant)

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, clock_seconds: float) -> None:
        self._now += max(0.0, clock_seconds)
        await asyncio.sleep(0)

    def env(self) -> dict[str, str]:
        # A child process cannot follow a manual clock; it gets the instant, standing still is not
        # possible across processes, so it runs at real speed from there.
        return {ENV_START: self.now_dt().isoformat(), ENV_SPEED: "1", ENV_ANCHOR: repr(time.time())}

    @property
    def simulated(self) -> bool:
        return True


def parse_instant(raw: str, name: str = ENV_START) -> float:
    """An ISO-8601 instant (with an offset, or Z) or Unix seconds, as Unix seconds."""
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ClockError(f"{name} must be an ISO-8601 instant such as 2026-12-11T21:55:00Z "
                         f"(or Unix seconds), not {raw[:40]!r}") from None
    if value.tzinfo is None:
        raise ClockError(f"{name} must say its UTC offset (2026-12-11T15:55:00-06:00 or ...Z), "
                         f"not {raw[:40]!r}")
    return value.timestamp()


def clock_from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The clock the RDC_CLOCK_* variables describe; the real one when RDC_CLOCK_START is unset."""
    env = os.environ if env is None else env
    raw_start = (env.get(ENV_START) or "").strip()
    if not raw_start:
        return LiveClock()
    start = parse_instant(raw_start)
    raw_speed = (env.get(ENV_SPEED) or "").strip() or "1"
    try:
        speed = float(raw_speed)
    except ValueError:
        raise ClockError(f"{ENV_SPEED} must be a number above 0 (1 = real time), not {raw_speed[:20]!r}") from None
    if not 0 < speed <= MAX_SPEED:
        raise ClockError(f"{ENV_SPEED} must be above 0 and at most {MAX_SPEED:.0f}, not {raw_speed[:20]!r}")
    raw_anchor = (env.get(ENV_ANCHOR) or "").strip()
    anchor = None
    if raw_anchor:
        try:
            anchor = float(raw_anchor)
        except ValueError:
            raise ClockError(f"{ENV_ANCHOR} must be real Unix seconds (the instant {ENV_START} stands for), "
                             f"not {raw_anchor[:20]!r}") from None
    return ScaledClock(start, speed, anchor)


def pin_environment(env, start: str = OPEN_INSTANT, speed: float = 1.0) -> None:
    """Put a simulated clock starting now at `start` into `env` (os.environ for a whole process tree)
    unless it already names one, and anchor it now."""
    if not (env.get(ENV_START) or "").strip():
        env[ENV_START] = start
        env[ENV_SPEED] = repr(float(speed))
        env.pop(ENV_ANCHOR, None)
    if not (env.get(ENV_ANCHOR) or "").strip():
        env[ENV_ANCHOR] = repr(time.time())
    reset_default_clock()


def with_anchor(env: Mapping[str, str], anchor: float | None = None) -> dict[str, str]:
    """`env` with RDC_CLOCK_ANCHOR set to `anchor` (default: now) when a simulated clock has none.

    Whoever starts several processes calls this once and hands the result to all of them, so they
    share one timeline.
    """
    out = dict(env)
    if (out.get(ENV_START) or "").strip() and not (out.get(ENV_ANCHOR) or "").strip():
        out[ENV_ANCHOR] = repr(time.time() if anchor is None else anchor)
    return out


_default: Clock | None = None


def default_clock() -> Clock:
    """The process's clock from its environment, built once (for code with no settings object)."""
    global _default
    if _default is None:
        _default = clock_from_env()
    return _default


def reset_default_clock() -> None:
    """Forget the cached clock so the next default_clock() reads the environment again (tests)."""
    global _default
    _default = None
