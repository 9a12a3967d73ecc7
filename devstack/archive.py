"""`make archive`: run the archive job now, on the data `make run` records (python -m devstack.archive).

It uses the settings `make run` uses (the environment and `.env`), and the clock of the running stack
(`.local/devstack.json`), so "closed days" mean the same to both. With the stack's private PostgreSQL,
the stack must be running; with DATABASE_URL set, it needs nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys

from devstack.plan import PlanError
from devstack.run import load_plan
from devstack.services import port_open


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        plan = load_plan()
    except PlanError as exc:
        print(f"make archive: {exc}", file=sys.stderr)
        return 2
    env = dict(plan.envs["archive"])
    state_file = plan.local_dir / "devstack.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = None
    if plan.starts("postgres") and (state is None or not port_open(plan.ports["postgres"])):
        print("make archive: the stack's PostgreSQL is not running; start it with `make run` (make archive archives "
              "what it records), or set DATABASE_URL to archive another database", file=sys.stderr)
        return 2
    if state is not None:
        for name in [k for k in env if k.startswith("RDC_CLOCK_")]:
            del env[name]
        env.update(state.get("clock") or {})
    return subprocess.call(plan.commands["archive"] + argv, env=env, cwd=plan.cwds["archive"])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
