"""The API as `make run` starts it (`chalice local` behind the NGINX template) on the suite's own
PostgreSQL and Redis, without the simulator or the collector: for the security and fuzzing tests.

Nothing here is a new launcher: the API's command line and environment come from
`devstack.plan.make_plan`, the process is a `devstack.run.Child`, NGINX is `devstack.services.Nginx`,
exactly the pieces `make run` uses.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.plan import PORT_DEFAULTS, make_plan
from devstack.run import Child
from devstack.services import Nginx, free_port, wait_port
from devstack.testing import http

REPO = Path(__file__).resolve().parents[2]
# The user's own settings never reach the API under test (same list as devstack.testing's).
_SCRUB = ("DATABASE_URL", "REDIS_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "API_KEYS",
          "API_KEYS_SECRET_ARN", "REQUIRE_API_KEY_FOR_WRITES", "API_MAX_BODY_BYTES", "DB_STATEMENT_TIMEOUT_MS",
          "RDC_LOCAL_DIR", "RDC_NGINX_RATE", "RDC_NGINX_BURST", *(var for var, _ in PORT_DEFAULTS.values()))


@dataclass
class ApiBehindNginx:
    api: Child
    nginx: Nginx
    local_dir: Path

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def api_log(self) -> Path:
        return self.api.logfile

    def logs_text(self) -> str:
        """Everything the API and NGINX have logged so far."""
        return "\n".join(p.read_text(errors="replace")
                         for p in (self.api.logfile, self.nginx.access_log, self.nginx.error_log) if p.exists())

    def extra_nginx(self, name: str, upstream: str | None = None, rate_limit: str | None = None,
                    burst: int | None = None) -> Nginx:
        """Another NGINX from the same template (another rate, or in front of nothing); the caller stops it."""
        nginx = Nginx(confdir=self.local_dir / name, port=free_port(),
                      upstream=upstream or self.nginx.upstream, logdir=self.local_dir / name / "logs",
                      rate_limit=rate_limit or self.nginx.rate_limit,
                      burst=self.nginx.burst if burst is None else burst)
        nginx.start()
        return nginx


@contextlib.contextmanager
def api_behind_nginx(local_dir: Path, database_url: str, redis_url: str,
                     **settings: str) -> Iterator[ApiBehindNginx]:
    """Start `chalice local` and NGINX in front of it; `settings` are environment variables such as
    API_KEYS or RDC_NGINX_RATE, read by the API or by the plan exactly as `make run` reads them."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, RDC_LOCAL_DIR=str(local_dir),
               RDC_API_PORT=str(free_port()), RDC_HTTP_PORT=str(free_port()), **settings)
    plan = make_plan(env, REPO, python=sys.executable)
    api = Child(name="api", argv=plan.commands["api"], env=plan.envs["api"], cwd=plan.cwds["api"],
                logfile=plan.log_file("api"))
    nginx = Nginx(confdir=local_dir / "nginx", port=plan.ports["nginx"], upstream=f"127.0.0.1:{plan.ports['api']}",
                  logdir=plan.logs_dir, rate_limit=plan.nginx_rate_limit, burst=plan.nginx_burst)
    try:
        api.start()
        wait_port(plan.ports["api"], 60, api.proc, "chalice local")
        nginx.start()
        _wait_healthy(nginx.url + "/health", api)
        yield ApiBehindNginx(api, nginx, local_dir)
    finally:
        nginx.stop()
        api.stop()


def _wait_healthy(url: str, api: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = http("GET", url, timeout=5)[0]
            if last == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy within {timeout:.0f}s (last status {last}):\n"
                       f"{api.logfile.read_text(errors='replace')[-3000:]}")
