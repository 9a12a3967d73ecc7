"""`make run`'s archive schedule and `make archive`, with the job replaced by a one-line program: when
the job runs (at start, then just after each UTC day closes on the stack's clock), one at a time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import sys
import time
from pathlib import Path

import pytest

from devstack import archive as make_archive
from devstack.plan import make_plan
from devstack.run import ArchiveSchedule
from rdc_common.clock import ManualClock

pytestmark = pytest.mark.unit
UTC = dt.UTC


def _plan(tmp_path: Path, clock: ManualClock, program: str):
    plan = make_plan({"RDC_LOCAL_DIR": str(tmp_path)}, Path(__file__).resolve().parents[2], python=sys.executable)
    commands = {**plan.commands, "archive": [sys.executable, "-c", program]}
    return dataclasses.replace(plan, commands=commands, clock=clock)


def _wait_done(schedule: ArchiveSchedule) -> None:
    deadline = time.monotonic() + 30
    while schedule.child is not None and schedule.child.alive():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_job_runs_at_start_then_after_each_utc_day_closes(tmp_path):
    clock = ManualClock(dt.datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    marker = tmp_path / "runs.txt"
    plan = _plan(tmp_path, clock, f"open({str(marker)!r}, 'a').write('run\\n')")
    schedule = ArchiveSchedule(plan, out=io.StringIO())
    schedule.poll()
    _wait_done(schedule)
    schedule.poll()  # reaps the finished run; not due again yet
    assert marker.read_text().count("run") == 1
    assert schedule.due == dt.datetime(2026, 11, 25, 1, 5, tzinfo=UTC)
    clock.set(dt.datetime(2026, 11, 25, 1, 4, tzinfo=UTC))
    schedule.poll()
    assert schedule.child is None and marker.read_text().count("run") == 1
    clock.set(dt.datetime(2026, 11, 25, 1, 6, tzinfo=UTC))
    schedule.poll()
    _wait_done(schedule)
    schedule.poll()
    assert marker.read_text().count("run") == 2 and schedule.due == dt.datetime(2026, 11, 26, 1, 5, tzinfo=UTC)
    assert "archive" in (tmp_path / "logs" / "archive.log").read_text()


def test_a_failed_run_is_reported_and_retried_at_the_next_time(tmp_path):
    clock = ManualClock(dt.datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    out = io.StringIO()
    schedule = ArchiveSchedule(_plan(tmp_path, clock, "raise SystemExit(1)"), out=out)
    schedule.poll()
    _wait_done(schedule)
    schedule.poll()
    assert "archive job exited with code 1" in out.getvalue() and "archive.log" in out.getvalue()
    # A run still going when the stack stops is stopped with it (the job is safe to kill).
    clock.set(schedule.due)
    schedule.plan = _plan(tmp_path, clock, "import time; time.sleep(60)")
    schedule.poll()
    assert schedule.child is not None and schedule.child.alive()
    schedule.stop()
    assert schedule.child is None


def test_make_archive_without_a_running_stack_says_to_start_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RDC_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("RDC_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("RDC_PG_PORT", "1")
    for name in ("DATABASE_URL", "DB_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert make_archive.main([]) == 2
    assert "start it with `make run`" in capsys.readouterr().err
