"""/openapi.json as a tool meets it: served through NGINX, valid OpenAPI 3.0 for the maintained
validator, and complete enough that a client generated from it (openapi-python-client, offline from
its own templates) talks to the running API: ticks, bars and subscribe."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

from tests.e2e.research import db_ticks

pytestmark = pytest.mark.e2e

PACKAGE = "rdc_generated_client"


@pytest.fixture(scope="module")
def document(open_api) -> dict:
    response = httpx.get(f"{open_api.url}/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


@pytest.fixture(scope="module")
def generated(document, tmp_path_factory):
    """The generated package, imported."""
    work = tmp_path_factory.mktemp("generated")
    spec = work / "openapi.json"
    spec.write_text(json.dumps(document))
    bindir = Path(sys.executable).parent  # its post-generation hooks run the project's ruff
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(bindir / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
                          "--output-path", str(work / PACKAGE)], cwd=work, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Error" not in run.stdout and "Warning" not in run.stdout, run.stdout  # nothing it had to skip
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_the_served_document_is_valid_openapi_3_0(document):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in OpenAPIV30SpecValidator(document).iter_errors()]
    assert errors == []


def test_a_generated_client_reads_ticks_and_bars_and_subscribes(generated, open_api, research):
    get_ticks = importlib.import_module(f"{PACKAGE}.api.market_data.get_ticks")
    get_bars = importlib.import_module(f"{PACKAGE}.api.market_data.get_bars")
    subscribe = importlib.import_module(f"{PACKAGE}.api.subscriptions.subscribe")
    models = importlib.import_module(f"{PACKAGE}.models")
    day = research.day
    start, end = day.start, day.start + dt.timedelta(hours=2)
    client = generated.Client(base_url=open_api.url, raise_on_unexpected_status=True)

    # Ticks, paged with the cursor the API hands out, equal to the database.
    rows, cursor = [], None
    while True:
        if cursor is None:
            page = get_ticks.sync(day.symbol, client=client, limit=150, start=start.isoformat(),
                                  end=end.isoformat(), order=models.GetTicksOrder.ASC)
        else:
            page = get_ticks.sync(day.symbol, client=client, limit=150, cursor=cursor)
        assert isinstance(page, models.TicksPage), page
        rows += [(t.timestamp, t.price, t.volume, t.direction.value if t.direction else None, t.backfilled)
                 for t in page.data]
        cursor = page.next_cursor
        if not cursor:
            break
    assert rows == db_ticks(research.url, day.symbol, start, end) and len(rows) > 300

    bars = get_bars.sync(day.symbol, client=client, interval=models.GetBarsInterval.VALUE_1, start=start.isoformat(),
                         end=end.isoformat())
    assert isinstance(bars, models.Bars) and bars.interval.value == "1m"
    assert sum(b.trades for b in bars.data) == len(rows)

    # The body is optional and null means "infer the exchange" (this generator cannot leave a body out).
    result = subscribe.sync("ymh7", client=client, body=None)
    assert isinstance(result, models.SubscriptionResult)
    assert (result.status.value, result.symbol, result.exchange) == ("subscribed", "YMH7", "CBOT")

    # An error comes back as the documented Error model, with the API's message and request id.
    bad = get_ticks.sync("ES", client=client)
    assert isinstance(bad, models.Error) and bad.error == "Invalid symbol" and bad.request_id
