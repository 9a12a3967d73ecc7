"""Progress of a long archive run: a tqdm bar (rows done of total, rate, ETA) on a terminal, and a
structured log line every few seconds otherwise (ECS, cron, CI), with the same figures."""

from __future__ import annotations

import logging
import sys
import threading
import time


class Progress:
    def __init__(self, total_rows: int, log: logging.Logger, *, tty: bool | None = None, interval_s: float = 5.0):
        self.total = total_rows
        self.done = 0
        self._log = log
        self._interval = interval_s
        self._started = time.monotonic()
        self._last_line = self._started
        self._bar = None
        self._lock = threading.Lock()  # worker threads report at once
        if tty if tty is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total_rows, unit="rows", unit_scale=True, desc="archive", file=sys.stderr,
                             smoothing=0.1, dynamic_ncols=True)

    def grow(self, rows: int) -> None:
        """More work than planned (a day found changed or damaged during retention)."""
        self.total += rows
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def add(self, rows: int) -> None:
        with self._lock:
            self.done += rows
            if self._bar is not None:
                self._bar.update(rows)
                return
            now = time.monotonic()
            if now - self._last_line < self._interval:
                return
            self._last_line = now
        self._line("archive progress")

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def figures(self) -> dict:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        return {"done_rows": self.done, "total_rows": self.total, "rows_per_s": round(rate),
                "eta_s": round(left / rate, 1) if rate > 0 else None, "elapsed_s": round(elapsed, 1)}

    def _line(self, msg: str) -> None:
        self._log.info(msg, extra={"fields": self.figures()})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.total or self.done:
            self._line("archive progress")
