"""The container health check: the collector writes a small file every two seconds."""

from __future__ import annotations

import json
import time

STALE_AFTER_S = 30


def healthcheck(path: str) -> int:
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        print("unhealthy: no heartbeat file yet")
        return 1
    age = time.time() - float(doc.get("updated_at", 0))
    if age > STALE_AFTER_S:
        print(f"unhealthy: last heartbeat {age:.0f}s ago")
        return 1
    print(f"healthy: connected={doc.get('connected')} queue={doc.get('queue_depth')} "
          f"rate={doc.get('messages_per_s', 0):.0f}/s")
    return 0
