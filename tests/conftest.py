"""Real services for the suite: a private PostgreSQL and Redis started once per run, and the
suite's clock.

`RDC_TEST_DATABASE_URL` / `RDC_TEST_REDIS_URL` point the suite at servers the user runs
instead. Every test that asks for `database_url` gets its own migrated database.

Time is an input: the whole suite runs on a simulated clock (rdc_common.clock) that starts at
SUITE_CLOCK_START, whatever the real date is, and every process it starts (simulator, collector,
API, `make run`) inherits it through RDC_CLOCK_* in the environment. A test about a particular
instant (a roll, an expiry, a close, a DST change) sets its own. `RDC_TEST_CLOCK_START` moves the
suite's instant (the suite's expectations about front months hold at the default).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from collector_ecs.migrate import apply_migrations
from devstack.services import Postgres, Redis, free_port
from rdc_common import calendar
from rdc_common.clock import CLOCK_VARIABLES, OPEN_INSTANT, default_clock, pin_environment

# Tuesday 2026-11-24, 09:00 in Chicago: CME is open, ES's front month is ESZ6 and CL's CLF7.
SUITE_CLOCK_START = os.environ.get("RDC_TEST_CLOCK_START") or OPEN_INSTANT
# Set at import, before any test or fixture starts a process: they all share this timeline.
for _name in CLOCK_VARIABLES:
    os.environ.pop(_name, None)
pin_environment(os.environ, SUITE_CLOCK_START)
# Compute the catalogue's trading hours once, here, so the many processes the suite starts read them
# from the cache (rdc_common.calendar) instead of each importing pandas to compute them.
calendar.warm(around=default_clock().now())

REPO = Path(__file__).resolve().parent.parent


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PgHandle:
    """The suite's PostgreSQL: either ours (restartable for fault tests) or the user's."""

    def __init__(self, server: Postgres | None, admin_url: str):
        self.server = server
        self.admin_url = admin_url

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, template: str | None = None) -> str:
        name = "rdc_t_" + uuid.uuid4().hex[:12]
        tmpl = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"{tmpl}'))
        return _with_db(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg(tmp_path_factory) -> PgHandle:
    if url := os.environ.get("RDC_TEST_DATABASE_URL"):
        yield PgHandle(None, url)
        return
    # Not under pytest's 0700 tmp dir: PostgreSQL runs as its own account and must reach it.
    base = Path(tempfile.mkdtemp(prefix="rdc-test-pg-"))
    os.chmod(base, 0o755)
    server = Postgres(datadir=base / "data", port=free_port(), logfile=base / "postgres.log")
    server.start()
    try:
        yield PgHandle(server, _with_db(server.url, "postgres"))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_template(pg: PgHandle) -> str:
    """A database with every migration applied, cloned for each test (CREATE DATABASE ... TEMPLATE)."""
    url = pg.create_database()
    asyncio.run(apply_migrations(url))
    name = urlsplit(url).path.lstrip("/")
    yield name
    pg.drop_database(url)


@pytest.fixture
def database_url(pg: PgHandle, migrated_template: str) -> str:
    url = pg.create_database(template=migrated_template)
    yield url
    pg.drop_database(url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if url := os.environ.get("RDC_TEST_REDIS_URL"):
        yield url
        return
    base = tmp_path_factory.mktemp("redis")
    server = Redis(datadir=base, port=free_port(), logfile=base / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url
