"""Applies the numbered `sql/` migrations in order, once each (the one runner everything uses).

Locally `make run` and the tests call it; in AWS a one-off ECS task runs
`python -m collector_ecs migrate` with the same files baked into the image.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every runner.
_LOCK_KEY = 0x5244_4301


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    out = []
    for path in sorted(sql_dir.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"{path.name}: migration files are named NNN_description.sql")
        out.append((int(m.group(1)), path))
    versions = [v for v, _ in out]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version number")
    return out


async def apply_migrations(dsn_or_conn, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names of those applied (empty when up to date)."""
    conn = dsn_or_conn if isinstance(dsn_or_conn, asyncpg.Connection) else await asyncpg.connect(dsn_or_conn)
    try:
        # Serialise runners (the collector and `make run` may start together).
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {r["version"]: r["sha256"] for r in await conn.fetch("SELECT version, sha256 FROM schema_migrations")}
        done = []
        for version, path in migration_files(sql_dir):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if version in applied:
                continue
            async with conn.transaction():
                await conn.execute(text)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    version, path.name, digest,
                )
            done.append(path.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        if conn is not dsn_or_conn:
            await conn.close()


async def set_api_role_password(dsn: str, password: str) -> None:
    """Let the API's read-mostly role log in (in AWS its password is an ECS secret)."""
    conn = await asyncpg.connect(dsn)
    try:
        # ALTER ROLE takes no bind parameters; format(%L) quotes the literal server-side.
        stmt = await conn.fetchval("SELECT format('ALTER ROLE rdc_api LOGIN PASSWORD %L', $1::text)", password)
        await conn.execute(stmt)
    finally:
        await conn.close()


def main(dsn: str, api_role_password: str | None = None) -> int:
    done = asyncio.run(apply_migrations(dsn))
    print("applied: " + (", ".join(done) if done else "nothing (schema up to date)"))
    if api_role_password:
        asyncio.run(set_api_role_password(dsn, api_role_password))
        print("rdc_api role may now log in")
    return 0
