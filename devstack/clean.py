"""`make clean-local`: deletes `.local` (the private PostgreSQL and Redis data, logs, spool).

Refuses while a `make run` that uses it is still up. Follows `.local/pg` when it links to the
cluster's real home (kept under /var/lib/rdc when the postgres account cannot reach the repository).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from devstack.run import load_plan


def main() -> int:
    local = load_plan().local_dir
    state = local / "devstack.json"
    if state.exists():
        pid = json.loads(state.read_text()).get("pid")
        try:
            os.kill(int(pid), 0)
            print(f"make run (pid {pid}) still uses {local}; stop it first (Ctrl-C)", file=sys.stderr)
            return 1
        except (ProcessLookupError, TypeError, ValueError):
            pass
    pg = local / "pg"
    if pg.is_symlink():
        shutil.rmtree(os.readlink(pg), ignore_errors=True)
    shutil.rmtree(local, ignore_errors=True)
    print(f"deleted {local}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
