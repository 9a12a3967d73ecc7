"""Progress of a long download: a tqdm bar on a terminal (or in a notebook), structured JSON lines
on stderr otherwise (a log file, a CI job), nothing when switched off.

Progress is measured in time covered: a range of rows has no known row count until it is read, but
the timestamp of the last row received says how much of [start, end) is done, hence the ETA.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Protocol


class Progress(Protocol):
    def update(self, covered_s: float, rows: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, covered_s: float, rows: int) -> None:
        pass

    def close(self) -> None:
        pass


class BarProgress:
    """tqdm's bar over the seconds of the range, with the rows received as its postfix."""

    def __init__(self, label: str, total_s: float, stream: IO[str]):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=round(total_s), desc=label, unit="s", unit_scale=True, file=stream,
                         dynamic_ncols=True, leave=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} of the range "
                                                                   "[{elapsed}<{remaining}{postfix}]")
        self._done = 0

    def update(self, covered_s: float, rows: int) -> None:
        target = min(round(covered_s), self._bar.total)
        if target > self._done:
            self._bar.update(target - self._done)
            self._done = target
        self._bar.set_postfix_str(f"{rows:,} rows", refresh=False)

    def close(self) -> None:
        self._bar.update(self._bar.total - self._done)
        self._bar.close()


class LineProgress:
    """One JSON line at most every `every_s` seconds, and a last one if any was written."""

    def __init__(self, label: str, total_s: float, stream: IO[str], every_s: float = 5.0):
        self._label, self._total, self._stream, self._every = label, max(total_s, 1e-9), stream, every_s
        self._started = time.monotonic()
        self._last_line = self._started
        self._covered = 0.0
        self._rows = 0
        self._wrote = False

    def _line(self, final: bool) -> None:
        elapsed = time.monotonic() - self._started
        fraction = min(self._covered / self._total, 1.0)
        eta = (elapsed / fraction - elapsed) if 0 < fraction < 1 else 0.0
        self._stream.write(json.dumps({
            "event": "download_done" if final else "download_progress", "what": self._label,
            "done_pct": round(100 * (1.0 if final else fraction), 1), "rows": self._rows,
            "rows_per_s": round(self._rows / elapsed) if elapsed > 0 else None, "elapsed_s": round(elapsed, 1),
            "eta_s": 0.0 if final else round(eta, 1)}) + "\n")
        self._stream.flush()
        self._wrote = True

    def update(self, covered_s: float, rows: int) -> None:
        self._covered, self._rows = covered_s, rows
        now = time.monotonic()
        if now - self._last_line >= self._every:
            self._last_line = now
            self._line(final=False)

    def close(self) -> None:
        if self._wrote:
            self._line(final=True)


def _interactive(stream: IO[str]) -> bool:
    if "ipykernel" in sys.modules:  # a Jupyter notebook: tqdm.auto draws a widget
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_for(label: str, total_s: float, enabled: bool | None, stream: IO[str] | None = None) -> Progress:
    """enabled None: a bar on a terminal or notebook, JSON lines otherwise; False: nothing; True: a bar
    on a terminal, lines otherwise."""
    if enabled is False:
        return NoProgress()
    stream = stream or sys.stderr
    if _interactive(stream):
        return BarProgress(label, total_s, stream)
    return LineProgress(label, total_s, stream)
