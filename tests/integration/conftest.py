"""Fixtures shared by the API's integration tests: one recorded market per module, and a
chalice test client over it."""

import pytest

from .test_api_support import api_client, recorded_market


@pytest.fixture(scope="module")
def market(pg, migrated_template):
    yield from recorded_market(pg, migrated_template)


@pytest.fixture
def http(market, redis_url, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=market.url, REDIS_URL=redis_url) as http:
        yield http
