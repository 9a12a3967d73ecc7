"""Subscribe and unsubscribe: the durable row in PostgreSQL and the command on the real Redis stream."""

from __future__ import annotations

import datetime as dt

import pytest
import redis

from rdc_common.clock import default_clock
from tests.integration.test_api_support import (
    api_client,
    closed_port,
    fetch,
    response_schema,
    schema_errors,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

STREAM = "rdc:commands"


@pytest.fixture
def http(database_url, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url) as http:
        yield http


@pytest.fixture
def commands(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield lambda: [fields for _, fields in client.xrange(STREAM)]
    client.close()


def _row(database_url, symbol):
    rows = fetch(database_url, "SELECT * FROM subscriptions WHERE symbol = $1", symbol)
    return rows[0] if rows else None


def post(http, symbol, body: bytes = b"", content_type="application/json", method="POST"):
    return http.request(method, f"/api/subscribe/{symbol}", body=body, headers={"Content-Type": content_type})


def test_subscribe_answers_the_contract_and_queues_durably(http, database_url, commands):
    response = post(http, "GCZ6", b'{"exchange": "COMEX"}')
    assert response.status_code == 200
    assert response.json_body == {"status": "subscribed", "symbol": "GCZ6", "exchange": "COMEX",
                                  "message": "Subscription request for GCZ6 has been queued"}
    row = _row(database_url, "GCZ6")
    assert (row["exchange"], row["desired"], row["status"], row["reason"]) == ("COMEX", True, "pending", None)
    assert abs((default_clock().now_dt() - row["requested_at"]).total_seconds()) < 60
    (command,) = commands()
    assert command["op"] == "subscribe" and command["symbol"] == "GCZ6" and command["exchange"] == "COMEX"
    assert dt.datetime.fromisoformat(command["requested_at"]) == row["requested_at"]
    assert command["request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize("symbol, exchange", [("esz6", "CME"), ("CLF7", "NYMEX"), ("GCZ6", "COMEX"),
                                              ("YMH7", "CBOT"), ("6EH7", "CME")])
def test_the_exchange_is_inferred_from_the_product(http, database_url, symbol, exchange):
    response = post(http, symbol)
    assert response.status_code == 200
    assert response.json_body["exchange"] == exchange and response.json_body["symbol"] == symbol.upper()
    assert _row(database_url, symbol.upper())["exchange"] == exchange


def test_old_scripts_posting_without_a_json_content_type_still_work(http):
    response = post(http, "GCZ6", b'{"exchange": "COMEX"}', content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json_body["exchange"] == "COMEX"


def test_an_unknown_product_needs_its_exchange(http, database_url):
    response = post(http, "QQZ6")
    assert response.status_code == 400
    body = response.json_body
    assert body["error"] == "Exchange required" and '"exchange"' in body["message"]
    assert _row(database_url, "QQZ6") is None
    assert post(http, "QQZ6", b'{"exchange": "CME"}').status_code == 200
    assert _row(database_url, "QQZ6")["exchange"] == "CME"


@pytest.mark.parametrize("symbol, body, title", [
    ("XYZ", b"", "Invalid symbol"),                  # not a catalogue product, nor a contract
    ("ES.c.0", b"", "Invalid symbol"),               # continuous symbols are read-only
    ("ES", b'{"exchange": "CBOT"}', "Invalid exchange"),
    ("ESZ66", b"", "Invalid symbol"),
    ("GCH6", b"", "Invalid symbol"),                 # gold lists no March contract
    ("ESZ6", b'{"exchange": "NASDAQ"}', "Invalid exchange"),
    ("ESZ6", b'{"exchange": "NYMEX"}', "Invalid exchange"),
    ("ESZ6", b"{", "Invalid body"),
    ("ESZ6", b'["CME"]', "Invalid body"),
    ("ESZ6", b'{"exchange": 7}', "Invalid body"),
    ("ESZ6", b'{"exchange": "CME", "priority": 1}', "Invalid body"),
])
def test_bad_subscriptions_are_400_and_leave_nothing_behind(http, database_url, commands, symbol, body, title):
    response = post(http, symbol, body)
    assert response.status_code == 400, response.body
    assert response.json_body["error"] == title and response.json_body["request_id"]
    assert schema_errors(response_schema("/api/subscribe/{symbol}", "post", 400), response.json_body) == []
    assert fetch(database_url, "SELECT count(*) AS n FROM subscriptions")[0]["n"] == 0
    assert commands() == []


def test_a_body_over_the_limit_is_413(http, database_url):
    response = post(http, "ESZ6", b'{"exchange": "' + b"C" * 5000 + b'"}')
    assert response.status_code == 413
    assert response.json_body["error"] == "Payload too large" and "4096 bytes" in response.json_body["message"]
    assert _row(database_url, "ESZ6") is None


def test_unsubscribe_round_trip(http, database_url, commands):
    assert post(http, "NQZ6").status_code == 200
    response = post(http, "NQZ6", method="DELETE")
    assert response.status_code == 200
    assert response.json_body == {"status": "unsubscribed", "symbol": "NQZ6", "exchange": "CME",
                                  "message": "Unsubscription request for NQZ6 has been queued"}
    row = _row(database_url, "NQZ6")
    assert (row["desired"], row["status"]) == (False, "pending")
    assert [(c["op"], c["symbol"], c["exchange"]) for c in commands()] == [
        ("subscribe", "NQZ6", "CME"), ("unsubscribe", "NQZ6", "CME")]
    # subscribing again flips it back
    assert post(http, "NQZ6").status_code == 200
    assert _row(database_url, "NQZ6")["desired"] is True


def test_unsubscribing_on_another_exchange_is_a_conflict_that_changes_nothing(http, database_url, commands):
    assert post(http, "QQZ6", b'{"exchange": "CFE"}').status_code == 200
    response = post(http, "QQZ6", b'{"exchange": "CME"}', method="DELETE")
    assert response.status_code == 409
    assert response.json_body["error"] == "Exchange conflict" and "CFE" in response.json_body["message"]
    assert schema_errors(response_schema("/api/subscribe/{symbol}", "delete", 409), response.json_body) == []
    assert _row(database_url, "QQZ6")["desired"] is True  # still subscribed
    assert [c["op"] for c in commands()] == ["subscribe"]
    assert post(http, "QQZ6", b'{"exchange": "CFE"}', method="DELETE").status_code == 200
    assert _row(database_url, "QQZ6")["desired"] is False


def test_a_null_exchange_or_a_null_body_means_infer_it(http, database_url):
    assert post(http, "GCZ6", b'{"exchange": null}').json_body["exchange"] == "COMEX"
    assert post(http, "CLF7", b"null").json_body["exchange"] == "NYMEX"
    assert post(http, "GCZ6", b"null", method="DELETE").json_body["exchange"] == "COMEX"


def test_unsubscribing_a_symbol_the_table_does_not_know_records_the_wish(http, database_url, commands):
    response = post(http, "CLF7", method="DELETE")
    assert response.status_code == 200 and response.json_body["exchange"] == "NYMEX"
    row = _row(database_url, "CLF7")
    assert (row["desired"], row["status"]) == (False, "pending")
    assert commands()[-1]["op"] == "unsubscribe"
    assert post(http, "QQZ6", method="DELETE").status_code == 400  # unknown product: which exchange?


def test_subscriptions_list_the_desired_set_with_status_reason_and_since_when(http, database_url, commands):
    post(http, "GCZ6")
    post(http, "ESZ6")
    post(http, "ESZ6", method="DELETE")
    # the collector's side of the story: one active, one failed
    fetch(database_url, "UPDATE subscriptions SET status = 'failed', reason = 'no such contract', "
                        "status_since = now() WHERE symbol = 'GCZ6' RETURNING 1")
    response = http.get("/api/subscriptions")
    assert response.status_code == 200
    body = response.json_body
    assert schema_errors(response_schema("/api/subscriptions", "get", 200), body) == []
    by_symbol = {s["symbol"]: s for s in body["subscriptions"]}
    assert body["count"] == 2
    assert (by_symbol["GCZ6"]["status"], by_symbol["GCZ6"]["reason"], by_symbol["GCZ6"]["desired"]) == \
        ("failed", "no such contract", True)
    assert (by_symbol["ESZ6"]["status"], by_symbol["ESZ6"]["desired"]) == ("pending", False)
    for s in body["subscriptions"]:
        assert dt.datetime.fromisoformat(s["status_since"]) >= dt.datetime.fromisoformat(s["requested_at"])


def test_with_redis_down_the_request_is_still_queued_in_postgres(database_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0") as http:
        response = post(http, "GCZ6")
        assert response.status_code == 200 and response.json_body["status"] == "subscribed"
        assert _row(database_url, "GCZ6")["desired"] is True
        assert post(http, "GCZ6", method="DELETE").status_code == 200
        assert _row(database_url, "GCZ6")["desired"] is False


def test_with_postgres_down_nothing_is_queued_and_the_answer_is_503(redis_url, commands, monkeypatch):
    url = f"postgresql://postgres:pw@127.0.0.1:{closed_port()}/rithmic_db"
    with api_client(monkeypatch, DATABASE_URL=url, REDIS_URL=redis_url) as http:
        response = post(http, "GCZ6")
        assert response.status_code == 503
        assert response.json_body["error"] == "Database unavailable"
        assert commands() == []


# -- products: followed as their front month ---------------------------------------------

@pytest.mark.parametrize("code, exchange", [("ES", "CME"), ("gc", "COMEX"), ("ZN", "CBOT"), ("CL", "NYMEX")])
def test_a_product_is_stored_as_kind_product_with_its_catalogue_exchange(http, database_url, commands, code,
                                                                        exchange):
    response = post(http, code)
    assert response.status_code == 200, response.body
    body = response.json_body
    assert schema_errors(response_schema("/api/subscribe/{symbol}", "post", 200), body) == []
    assert (body["status"], body["symbol"], body["exchange"]) == ("subscribed", code.upper(), exchange)
    assert "front month" in body["message"]
    row = _row(database_url, code.upper())
    assert (row["kind"], row["product"], row["exchange"], row["desired"], row["status"]) == \
        ("product", None, exchange, True, "pending")
    (command,) = commands()
    # The collector tells a product from a contract by the symbol (rdc_common.products.is_product_code).
    assert (command["op"], command["symbol"], command["exchange"], command["kind"]) == \
        ("subscribe", code.upper(), exchange, "product")


def test_unsubscribing_a_product_keeps_its_row_and_tells_the_collector(http, database_url, commands):
    assert post(http, "NQ").status_code == 200
    response = post(http, "nq", method="DELETE")
    assert response.status_code == 200
    assert response.json_body == {"status": "unsubscribed", "symbol": "NQ", "exchange": "CME",
                                  "message": "Unsubscription request for NQ has been queued"}
    row = _row(database_url, "NQ")
    assert (row["kind"], row["desired"], row["status"]) == ("product", False, "pending")
    assert [(c["op"], c["symbol"], c["kind"]) for c in commands()] == [
        ("subscribe", "NQ", "product"), ("unsubscribe", "NQ", "product")]
    # A product the table never knew: the wish is recorded as a product row too.
    assert post(http, "CL", method="DELETE").status_code == 200
    assert (_row(database_url, "CL")["kind"], _row(database_url, "CL")["desired"]) == ("product", False)


def test_a_continuous_symbol_is_refused_with_what_to_subscribe_instead(http, database_url, commands):
    for method in ("POST", "DELETE"):
        response = post(http, "ES.c.0", method=method)
        assert response.status_code == 400
        assert response.json_body["error"] == "Invalid symbol"
        assert "subscribe ES" in response.json_body["message"]
    assert fetch(database_url, "SELECT count(*) AS n FROM subscriptions")[0]["n"] == 0
    assert commands() == []


def test_subscriptions_show_kind_and_the_product_that_brought_a_contract_in(http, database_url):
    assert post(http, "ES").status_code == 200
    assert post(http, "GCZ6").status_code == 200
    # What the collector writes when it follows ES: its front month, brought in by the product.
    fetch(database_url, "INSERT INTO subscriptions (symbol, exchange, desired, status, kind, product) "
                        "VALUES ('ESZ6', 'CME', true, 'active', 'contract', 'ES') RETURNING 1")
    body = http.get("/api/subscriptions").json_body
    assert schema_errors(response_schema("/api/subscriptions", "get", 200), body) == []
    by_symbol = {s["symbol"]: (s["kind"], s["product"]) for s in body["subscriptions"]}
    assert by_symbol == {"ES": ("product", None), "ESZ6": ("contract", "ES"), "GCZ6": ("contract", None)}
    # Subscribing the contract explicitly makes it the user's own: never rolled, kept past a product's roll.
    assert post(http, "ESZ6").status_code == 200
    assert (_row(database_url, "ESZ6")["kind"], _row(database_url, "ESZ6")["product"]) == ("contract", None)
