"""The archiver when things go wrong, with real processes: `python -m collector_ecs archive` killed with
SIGKILL at several points and run again; the archive unreachable (a directory that cannot be created,
an S3 endpoint that is down: moto's server, stopped); damaged and truncated files. Every case ends with
exactly one complete, verified copy, and no day dropped that the archive did not verifiably hold."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from collector_ecs.archive.archiver import Archiver
from collector_ecs.archive.store import StoreError
from devstack.services import free_port
from rdc_common.archive_layout import SCHEMAS, TABLES, file_key, reference_checksum

from .archive_helpers import (
    DAYS,
    NOW,
    archived_files,
    assert_one_complete_copy,
    files_under,
    pg_rows,
    record,
    settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]
REPO = Path(__file__).resolve().parents[2]
RETAIN_7 = {"tick_data": 7, "quote_data": 7, "level2_data": 7}  # on 2026-11-24: drops 2026-11-16


def _env(url: str, archive, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDC_CLOCK_")}
    env.update({"DATABASE_URL": url, "ARCHIVE_URL": str(archive), "RDC_CLOCK_START": NOW.isoformat(),
                "RDC_CLOCK_SPEED": "1", "RETENTION_DAYS_TICKS": "0", "RETENTION_DAYS_QUOTES": "0",
                "RETENTION_DAYS_LEVEL2": "0", **extra})
    return env


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "collector_ecs", "archive", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _archive(env: dict[str, str], *args: str) -> tuple[int, list[dict], str]:
    proc = _start(env, *args)
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, [json.loads(line) for line in out.splitlines() if line.startswith("{")], out


def _wait(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


async def _partition_exists(url: str, name: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    finally:
        await conn.close()


@pytest.fixture
async def recorded(database_url):
    return await record(database_url)


async def test_sigkill_at_any_point_then_a_rerun_leaves_exactly_one_complete_copy(database_url, tmp_path):
    # Enough rows that a run takes a while, so the kills at chosen delays land inside it.
    recorded = await record(database_url, seconds=40)
    root = tmp_path / "archive"
    env = _env(database_url, root)
    holder = await asyncpg.connect(database_url)
    try:
        # 1. Files written in place, not yet recorded: the recording waits on a lock the test holds.
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE archived_days IN EXCLUSIVE MODE")
        proc = _start(env, "--no-retention")
        await asyncio.to_thread(_wait, lambda: any(root.rglob("part-0.parquet")), 60, "a file in place")
        _kill(proc)
        await tx.rollback()
        assert await archived_files(database_url) == []

        # 2. A whole day written and recorded, its manifest file too, but not its manifest row: the row's
        # insert waits behind the same key inserted (uncommitted) by the test.
        tx = holder.transaction()
        await tx.start()
        await holder.execute("INSERT INTO archive_manifests (table_name, day, symbols, rows, bytes, path, written_at) "
                             "VALUES ('tick_data', $1, 0, 0, 0, 'x', now())", DAYS[0])
        proc = _start(env, "--no-retention")
        manifest = root / f"tick_data/date={DAYS[0].isoformat()}/_manifest.json"
        await asyncio.to_thread(_wait, manifest.exists, 60, "the first manifest")
        await asyncio.sleep(0.3)
        _kill(proc)
        await tx.rollback()

        # 3. Killed at moments nobody chose, each run going a little further than the last.
        for delay in (0.1, 0.4, 1.0):
            proc = _start(env, "--no-retention")
            await asyncio.sleep(delay)
            if proc.poll() is None:
                _kill(proc)
            else:
                proc.communicate()
            # Whatever a reader can see at a final path is a whole Parquet file.
            for path in root.rglob("part-0.parquet"):
                assert path.read_bytes()[-4:] == b"PAR1", path

        code, lines, out = await asyncio.to_thread(_archive, env, "--no-retention")
        assert code == 0, out[-3000:]
        await assert_one_complete_copy(database_url, root, expect=recorded)

        # 4. Killed inside retention while the drop waits for its lock: the transaction dies with the
        # process, the partition is still there, and the next run drops it.
        retain = _env(database_url, root, RETENTION_DAYS_TICKS="7", ARCHIVE_LOCK_TIMEOUT_S="120")
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM tick_data_20261116 LIMIT 1")  # a reader in the way of DROP
        proc = _start(retain)

        async def dropping() -> bool:
            # From another session: inside the holder's transaction pg_stat_activity is a frozen snapshot.
            watcher = await asyncpg.connect(database_url)
            try:
                return bool(await watcher.fetchval("SELECT count(*) FROM pg_stat_activity "
                                                   "WHERE wait_event_type = 'Lock' AND query LIKE 'DROP TABLE%'"))
            finally:
                await watcher.close()

        deadline = time.monotonic() + 60
        while not await dropping():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("retention never reached the drop:\n" + proc.communicate()[0][-3000:])
            await asyncio.sleep(0.02)
        _kill(proc)
        await tx.rollback()
        assert await _partition_exists(database_url, "tick_data_20261116")
        code, lines, out = await asyncio.to_thread(_archive, retain)
        assert code == 0, out[-3000:]
        assert not await _partition_exists(database_url, "tick_data_20261116")
        finished = next(line for line in lines if line.get("msg") == "archive run finished")
        assert finished["dropped"] == 1
    finally:
        await holder.close()
    # The dropped day lives on in the archive alone, whole: every file still matches what was verified.
    files = [f for f in await archived_files(database_url) if (f["table_name"], f["day"]) == ("tick_data", DAYS[0])]
    assert sum(f["rows"] for f in files) == recorded[("tick_data", DAYS[0])]
    assert not [p for p in files_under(root) if p.endswith(".tmp")]


async def test_an_unwritable_archive_fails_clearly_drops_nothing_and_the_next_run_recovers(database_url, recorded,
                                                                                            tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the archive directory should be")
    env = _env(database_url, blocker / "archive", RETENTION_DAYS_TICKS="7", RETENTION_DAYS_QUOTES="7",
               RETENTION_DAYS_LEVEL2="7")
    code, lines, out = await asyncio.to_thread(_archive, env)
    assert code == 1, out[-3000:]
    error = next(line for line in lines if line["level"] == "ERROR")["msg"]
    assert "cannot create" in error and str(blocker) in error and "the next run retries" in error
    emf = next(line for line in lines if "_aws" in line)
    assert emf["ArchiveFailures"] == 1
    for table in TABLES:
        assert await _partition_exists(database_url, f"{table}_20261116")
    assert await archived_files(database_url) == []

    blocker.unlink()
    code, lines, out = await asyncio.to_thread(_archive, env)
    assert code == 0, out[-3000:]
    for table in TABLES:
        assert not await _partition_exists(database_url, f"{table}_20261116")
    await assert_one_complete_copy(database_url, blocker / "archive")


async def test_a_truncated_file_is_found_and_written_again(database_url, recorded, tmp_path):
    root = tmp_path / "archive"
    await Archiver(settings(database_url, root), tty=False).run()
    path = root / file_key("level2_data", DAYS[1], "ESZ6")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # as a copy cut short would leave it
    result = await Archiver(settings(database_url, root), tty=False).run()
    assert result.days == 1 and result.files == 2  # that table-day again, both its symbols
    assert path.read_bytes() == data
    await assert_one_complete_copy(database_url, root, expect=recorded)


async def test_a_corrupted_file_is_never_taken_for_good(database_url, recorded, tmp_path):
    """Same size, different bytes: `--verify` finds it; so does retention, before it would drop the day,
    and it writes the file again from PostgreSQL first."""
    root = tmp_path / "archive"
    await Archiver(settings(database_url, root), tty=False).run()
    good = {}
    for table, day in (("tick_data", DAYS[1]), ("quote_data", DAYS[0])):
        path = root / file_key(table, day, "CLF7")
        good[path] = data = path.read_bytes()
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])

    plain = await Archiver(settings(database_url, root), tty=False).run()  # sizes match: not seen cheaply
    assert plain.files == 0
    verified = await Archiver(settings(database_url, root), tty=False).run(verify=True, tables=("tick_data",))
    assert verified.files == 2
    tick = root / file_key("tick_data", DAYS[1], "CLF7")
    assert tick.read_bytes() == good[tick]

    quote = root / file_key("quote_data", DAYS[0], "CLF7")
    assert quote.read_bytes() != good[quote]
    retained = await Archiver(settings(database_url, root, retention=RETAIN_7), tty=False).run()
    assert ("quote_data", DAYS[0]) in retained.dropped
    assert quote.read_bytes() == good[quote]
    rows = await asyncio.to_thread(_parquet_checksum, quote)
    assert rows == next(f["checksum"] for f in await archived_files(database_url)
                        if (f["table_name"], f["day"], f["symbol"]) == ("quote_data", DAYS[0], "CLF7"))


def _parquet_checksum(path: Path) -> str:
    from collector_ecs.archive.parquet import read_back

    return read_back(path, "quote_data")[1]


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 as a real HTTP server on loopback, which the archiver reaches through boto3."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    boto3.client("s3").create_bucket(Bucket="rdc-archive")
    yield server, port
    server.stop()


async def test_s3_archive_and_an_unreachable_bucket(database_url, recorded, s3, tmp_path):
    server, port = s3
    url = "s3://rdc-archive/market-data"
    await Archiver(settings(database_url, url), tty=False).run()
    client = boto3.client("s3")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="rdc-archive")["Contents"]}
    files = await archived_files(database_url)
    assert {f"market-data/{f['path']}" for f in files} <= keys
    assert len(files) == len(DAYS) * len(TABLES) * 2
    obj = client.get_object(Bucket="rdc-archive", Key=f"market-data/{file_key('tick_data', DAYS[0], 'ESZ6')}")
    assert obj["ContentType"] == "application/vnd.apache.parquet"
    local = tmp_path / "t.parquet"
    local.write_bytes(obj["Body"].read())
    from collector_ecs.archive.parquet import read_back

    rows = await pg_rows(database_url, "tick_data", DAYS[0], "ESZ6")
    assert read_back(local, "tick_data")[1] == reference_checksum(SCHEMAS["tick_data"], rows)

    # The bucket goes away: the run that would drop 2026-11-16 cannot re-read its files, so it fails with
    # a sentence naming the bucket and drops nothing.
    server.stop()
    with pytest.raises(StoreError, match="s3://rdc-archive/market-data"):
        await Archiver(settings(database_url, url, retention=RETAIN_7), tty=False).run()
    for table in TABLES:
        assert await _partition_exists(database_url, f"{table}_20261116")
    # It comes back; the next run verifies and drops.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        result = await Archiver(settings(database_url, url, retention=RETAIN_7), tty=False).run()
        assert set(result.dropped) == {(t, DAYS[0]) for t in TABLES}
    finally:
        server.stop()

