"""Schemathesis against /openapi.json of the API behind NGINX: every check, every phase, bounded.

`schemathesis run` (the CLI a user would run) fuzzes every documented operation through NGINX with
the API key set: schema examples, the coverage phase (boundary values, wrong types, missing and
wrong keys, undeclared methods) and random fuzzing, `--max-examples` per operation, one worker.
It must report no failure at all (no 5xx, no response that breaks the document, no schema-valid
request refused, no invalid one accepted) and NGINX's access log must show no 5xx and no 429:
the rate limit is raised for this NGINX rather than letting throttled requests through the checks.

The API's rules that OpenAPI 3.0 cannot state (a cursor is a token the API issued; start and end
together; the product catalogue) are taught to the generator in tests/e2e/fuzz_hooks.py.

RDC_FUZZ_SEED and RDC_FUZZ_EXAMPLES change the seed (fixed by default, so a run is repeatable) and
the examples per operation.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections import Counter

import pytest

from tests.e2e.api_behind_nginx import REPO, api_behind_nginx
from tests.integration.test_api_support import recorded_market

pytestmark = pytest.mark.e2e

KEY = "rdc-fuzz-" + secrets.token_hex(16)
SEED = int(os.environ.get("RDC_FUZZ_SEED") or 20261124)
MAX_EXAMPLES = int(os.environ.get("RDC_FUZZ_EXAMPLES") or 30)
HOOKS = REPO / "tests" / "e2e" / "fuzz_hooks.py"
_STATUS = re.compile(r'" (\d{3}) ')  # the status after the request line in NGINX's combined log format


@pytest.fixture(scope="module")
def market(pg, migrated_template):
    yield from recorded_market(pg, migrated_template)


@pytest.fixture(scope="module")
def api(market, redis_server, tmp_path_factory):
    redis_url = redis_server if isinstance(redis_server, str) else redis_server.url
    local = tmp_path_factory.mktemp("fuzz")
    # A fuzzer on loopback is far faster than the per-address limit meant for clients.
    with api_behind_nginx(local, market.url, redis_url, API_KEYS=KEY, RDC_NGINX_RATE="10000r/s",
                          RDC_NGINX_BURST="10000") as running:
        yield running


def _access_log_lines(api) -> list[str]:
    return api.nginx.access_log.read_text(errors="replace").splitlines()


@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing_through_nginx(api, tmp_path):
    report = tmp_path / "schemathesis.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.url}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", str(SEED),
        "--continue-on-failure", "--generation-database", "none", "--request-timeout", "30",
        "-H", f"x-api-key: {KEY}", "--no-color", "--report", "json", "--report-json-path", str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    logged_before = len(_access_log_lines(api))
    # Its own directory: Hypothesis keeps caches in the working directory.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    output = run.stdout + run.stderr
    assert report.exists(), output[-5000:]
    doc = json.loads(report.read_text())

    requests = _access_log_lines(api)[logged_before:]
    statuses = Counter(m.group(1) for line in requests if (m := _STATUS.search(line)))
    summary = {
        "command": "schemathesis " + " ".join(command[3:]).replace(KEY, "[key]"),
        "operations": doc["operations"], "test_cases": doc["test_cases"], "phases": doc["phases"],
        "requests_through_nginx": len(requests), "statuses": dict(sorted(statuses.items())),
        "failures": doc["failures"], "errors": doc["errors"], "running_time_s": round(doc["running_time"], 1),
    }
    print("schemathesis:", json.dumps(summary, indent=1))

    assert doc["complete"] and doc["exit_code"] == 0, output[-8000:]
    assert doc["failures"] == [] and doc["errors"] == [], output[-8000:]
    ops = doc["operations"]
    assert ops["tested"] == ops["selected"] == ops["total"] and ops["total"] >= 12, ops
    assert ops["errored"] == 0 and ops["skipped"] == 0, ops
    assert doc["test_cases"]["with_failures"] == 0 and doc["test_cases"]["errored"] == 0, doc["test_cases"]
    for phase in ("coverage", "fuzzing"):
        assert doc["phases"][phase]["status"] == "success", doc["phases"]
    # Every request went through NGINX, and none met a 5xx or the rate limit.
    assert len(requests) >= doc["test_cases"]["generated"], (len(requests), doc["test_cases"])
    assert not [s for s in statuses if s.startswith("5")], statuses
    assert "429" not in statuses, statuses
    assert KEY not in api.logs_text()
