"""The whole stack for the e2e tests, started exactly as `make run` starts it.

One `python -m devstack.run` per module, with its own .local directory and free ports so it never
meets a developer's own `make run`. With RDC_TEST_DATABASE_URL / RDC_TEST_REDIS_URL set (no server
binaries here), it is handed a fresh database and that Redis instead of starting its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from devstack.testing import StackProcess


@pytest.fixture(scope="module")
def stack(request):
    extra: dict[str, str] = {}
    database_url = None
    if os.environ.get("RDC_TEST_DATABASE_URL"):
        pg = request.getfixturevalue("pg")
        database_url = pg.create_database()
        extra["DATABASE_URL"] = database_url
    if os.environ.get("RDC_TEST_REDIS_URL"):
        extra["REDIS_URL"] = os.environ["RDC_TEST_REDIS_URL"]
    # Not under pytest's 0700 tmp: PostgreSQL runs as the postgres account when we are root.
    local = Path(tempfile.mkdtemp(prefix="rdc-e2e-"))
    proc = StackProcess(local, extra_env=extra)
    proc.start()
    try:
        proc.wait_healthy()
        proc.healthy_at = time.monotonic()
        yield proc
    finally:
        proc.kill()
        if database_url:
            request.getfixturevalue("pg").drop_database(database_url)
        pg_link = local / "pg"
        if pg_link.is_symlink():
            shutil.rmtree(os.readlink(pg_link), ignore_errors=True)
        shutil.rmtree(local, ignore_errors=True)
