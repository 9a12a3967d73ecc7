"""The bench's own PostgreSQL and Redis on loopback, in a directory it deletes afterwards, and
one freshly migrated database per measurement (cloned from a migrated template)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from collector_ecs.migrate import apply_migrations
from devstack.services import Postgres, Redis, free_port

TEMPLATE = "rdc_bench_template"


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


class BenchStack:
    """`start()` brings up PostgreSQL (devstack's settings: fsync and synchronous_commit on) and
    Redis; `database(name)` returns the URL of a new migrated database; `stop()` removes it all."""

    def __init__(self, workdir: Path | None = None, keep: bool = False):
        self._given = workdir
        self.keep = keep
        self.workdir: Path | None = None
        self.pg: Postgres | None = None
        self.redis: Redis | None = None
        self.admin_url = ""

    def start(self) -> None:
        base = self._given or Path(tempfile.mkdtemp(prefix="rdc-bench-"))
        base.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as an unprivileged account when we are root: let it reach its data
        # here, so the data is removed with this directory.
        os.chmod(base, 0o755)
        self.workdir = base
        self.pg = Postgres(datadir=base / "pg", port=free_port(), logfile=base / "postgres.log",
                           die_with_parent=True)
        self.pg.start()
        self.admin_url = with_db(self.pg.url, "postgres")
        self.redis = Redis(datadir=base / "redis", port=free_port(), logfile=base / "redis.log",
                           die_with_parent=True)
        self.redis.start()
        template = with_db(self.pg.url, TEMPLATE)
        asyncio.run(admin(self.admin_url, f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)',
                          f'CREATE DATABASE "{TEMPLATE}"'))
        asyncio.run(apply_migrations(template))

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def database(self, name: str) -> str:
        """A new database with every migration applied (a clone of the migrated template)."""
        asyncio.run(admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                          f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
        return with_db(self.pg.url, name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        asyncio.run(admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def postgres_pids(self) -> list[int]:
        """The postmaster and its children (for CPU accounting)."""
        if self.pg is None or self.pg.proc is None:
            return []
        root = self.pg.proc.pid
        return [root, *children_of(root)]

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.workdir is not None and not self.keep and self._given is None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (those still alive)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total
