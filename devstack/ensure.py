"""Makes sure the PostgreSQL, Redis, NGINX and Chromium binaries the test suite starts are installed.

    python -m devstack.ensure

Installs them with apt-get when run as root on Debian/Ubuntu; otherwise exits 1 printing the
exact command to run. A server the suite will not start (RDC_TEST_DATABASE_URL /
RDC_TEST_REDIS_URL point at the user's own) is not required.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

from devstack.services import MissingBinary, _apt_install, chromium_binary, nginx_binary, pg_bindir, redis_binary

# What to look for, and the Debian package that brings it.
_PACKAGES = {
    "postgres": "postgresql",
    "psql": "postgresql-client",
    "redis-server": "redis-server",
    "nginx": "nginx-light",
    "chromium": "chromium",  # the browser tests of /docs (Playwright drives Debian's build)
}


def _present(name: str) -> bool:
    if name == "postgres":
        return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None
    if name == "nginx":
        return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    if name == "chromium":
        return shutil.which("chromium") is not None or Path("/usr/bin/chromium").exists()
    return shutil.which(name) is not None


def needed(environ: dict[str, str]) -> list[str]:
    names = []
    if not environ.get("RDC_TEST_DATABASE_URL"):
        names += ["postgres", "psql"]
    if not environ.get("RDC_TEST_REDIS_URL"):
        names.append("redis-server")
    return names + ["nginx", "chromium"]


def main() -> int:
    names = needed(dict(os.environ))
    missing = [_PACKAGES[n] for n in names if not _present(n)]
    try:
        if missing:
            # One apt-get for everything (or one command to print), rather than one per binary.
            _apt_install(missing)
        found = {}
        if "postgres" in names:
            found["postgres"] = str(pg_bindir() / "postgres")
        for name, locate in (("psql", lambda: shutil.which("psql")), ("redis-server", redis_binary),
                             ("nginx", nginx_binary), ("chromium", chromium_binary)):
            if name in names:
                found[name] = locate()
        if "psql" in found and not found["psql"]:
            raise MissingBinary("psql was not found after installing postgresql-client")
    except MissingBinary as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    print("servers: " + ", ".join(f"{name} ({path})" for name, path in found.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
