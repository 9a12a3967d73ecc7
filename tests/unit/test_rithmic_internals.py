"""What the collector borrows from async_rithmic's internals is still there, and behaves."""

import ssl

import pytest
from async_rithmic.objects import ReconnectionSettings

from collector_ecs import rithmic_internals as ri

pytestmark = pytest.mark.unit


def test_installed_async_rithmic_still_has_what_we_rely_on():
    ri.check_compatibility()  # raises IncompatibleLibrary naming what moved


def test_compatibility_check_fails_loudly_when_an_internal_moves(monkeypatch):
    monkeypatch.setattr(ri.BasePlant, "_recv_loop", None)
    with pytest.raises(ri.IncompatibleLibrary, match="_recv_loop"):
        ri.check_compatibility()


def _client(url, ca_file=None):
    return ri.make_client(user="u", password="p", system_name="s", app_name="a", app_version="1",
                          url=url, ca_file=ca_file, max_reconnect_delay=7)


def test_ws_urls_get_no_ssl_context_and_wss_keeps_rithmics_ca():
    assert _client("ws://127.0.0.1:1").ssl_context is None
    ctx = _client("wss://rituz00100.rithmic.com:443").ssl_context
    assert isinstance(ctx, ssl.SSLContext) and ctx.cert_store_stats()["x509_ca"] >= 1


def test_reconnect_delay_is_always_finite_and_storm_floor_applies():
    client = _client("ws://127.0.0.1:1")
    rs = client.reconnection_settings
    assert isinstance(rs, ReconnectionSettings) and rs.max_delay == 7
    assert max(rs.get_delay(a) for a in range(1, 30)) <= 7 + 0.5
    ri.set_reconnect_floor(client, 20)
    assert rs.get_delay(1) >= 20


def test_fast_path_replaces_only_the_ticker_receive_loop():
    client = _client("ws://127.0.0.1:1")
    ticker, history = client.plants["ticker"], client.plants["history"]

    class Sink:
        full = False

    ri.install_fast_path(ticker, Sink())
    assert ticker._recv_loop.__name__ == "fast_recv_loop"
    assert history._recv_loop.__func__ is ri.BasePlant._recv_loop
