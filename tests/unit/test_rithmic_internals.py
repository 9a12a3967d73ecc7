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


def test_compatibility_check_names_the_websockets_internal_the_frame_reader_needs(monkeypatch):
    from websockets.asyncio.connection import Connection

    monkeypatch.delattr(Connection, "data_received")
    with pytest.raises(ri.IncompatibleLibrary, match="data_received"):
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


# -- FrameReader: market data split straight off the transport ------------------------------------

import asyncio  # noqa: E402
import random  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from websockets.frames import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Frame  # noqa: E402


def _wire(opcode, payload, fin=True, rsv1=False) -> bytes:
    # websockets' own encoder, so the reader is checked against an independent implementation.
    raw = Frame(opcode, payload, fin=fin).serialize(mask=False, extensions=[])
    return bytes([raw[0] | 0x40]) + raw[1:] if rsv1 else raw  # RSV1: a permessage-deflate frame


class _Transport:
    def __init__(self):
        self.paused = False

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


class _WebSocket:
    """Stands in for websockets' connection: records what the reader hands back to it."""

    def __init__(self, extensions=()):
        self.protocol = SimpleNamespace(max_size=2**20, extensions=list(extensions))
        self.transport = _Transport()
        self.to_websockets = bytearray()

    def data_received(self, data):
        self.to_websockets += data


class _Sink:
    def __init__(self):
        self.frames, self.full, self.space = [], False, None

    def handle(self, frame, received=None):
        assert received is not None  # the reader stamps each read
        self.frames.append(frame)
        return not frame.startswith(b"library")  # those go to async_rithmic's own queue

    async def wait_for_space(self):
        await self.space.wait()


def _payloads():
    rng = random.Random(7)
    sizes = [0, 1, 60, 125, 126, 127, 300, 65535, 65536, 70000] + [rng.randrange(20, 400) for _ in range(40)]
    out = [bytes(rng.getrandbits(8) for _ in range(n)) for n in sizes]
    out[5] = b"library-message"
    return out


def _feed(reader, wire: bytes, cuts):
    pos = 0
    for cut in cuts + [len(wire)]:
        reader.data_received(wire[pos:cut])
        pos = cut


@pytest.mark.parametrize("chunking", ["one-read", "every-byte-boundary-near-headers", "random"])
def test_frame_reader_delivers_every_message_whole_and_in_order_however_tcp_splits_it(chunking):
    payloads = _payloads()
    wire = b"".join(_wire(OP_BINARY, p) for p in payloads)
    if chunking == "one-read":
        cuts = []
    elif chunking == "random":
        rng = random.Random(1)
        cuts = sorted(rng.sample(range(1, len(wire)), 300))
    else:
        cuts = list(range(1, 400))  # splits inside the first headers and payloads, byte by byte
    ws, sink, queue = _WebSocket(), _Sink(), asyncio.Queue()
    reader = ri.FrameReader(ws, sink, queue)
    _feed(ws, wire, cuts)  # through the connection's data_received, as the transport calls it
    assert sink.frames == payloads
    assert queue.get_nowait() == b"library-message" and queue.empty()
    assert reader.tail == b"" and ws.to_websockets == b""


def test_frame_reader_hands_control_frames_to_websockets_and_keeps_reading():
    ws, sink = _WebSocket(), _Sink()
    ri.FrameReader(ws, sink, asyncio.Queue())
    ping = _wire(OP_PING, b"are you there")
    ws.data_received(_wire(OP_BINARY, b"a") + ping + _wire(OP_BINARY, b"b"))
    assert sink.frames == [b"a", b"b"]
    assert bytes(ws.to_websockets) == ping  # websockets answers the ping itself


@pytest.mark.parametrize("odd", [_wire(OP_BINARY, b"frag", fin=False) + _wire(OP_CONT, b"ment"),
                                 _wire(OP_TEXT, b"text"),
                                 _wire(OP_BINARY, b"deflated", rsv1=True)])
def test_frame_reader_gives_the_socket_back_at_the_first_frame_it_does_not_expect(odd):
    ws, sink = _WebSocket(), _Sink()
    reader = ri.FrameReader(ws, sink, asyncio.Queue())
    later = _wire(OP_BINARY, b"later")
    ws.data_received(_wire(OP_BINARY, b"before") + odd)
    ws.data_received(later)
    assert sink.frames == [b"before"]
    assert bytes(ws.to_websockets) == odd + later  # in order, from the odd frame on
    assert not reader.active


def test_frame_reader_leaves_a_compressed_session_to_websockets():
    ws, sink = _WebSocket(extensions=["permessage-deflate"]), _Sink()
    reader = ri.FrameReader(ws, sink, asyncio.Queue())
    ws.data_received(_wire(OP_BINARY, b"x"))
    assert not reader.active and sink.frames == [] and ws.to_websockets


def test_frame_reader_stops_reading_the_socket_while_the_writer_is_full():
    async def scenario():
        ws, sink = _WebSocket(), _Sink()
        sink.space = asyncio.Event()
        reader = ri.FrameReader(ws, sink, asyncio.Queue())
        resumer = asyncio.create_task(reader.resume_when_space())
        sink.full = True
        ws.data_received(_wire(OP_BINARY, b"x"))
        await asyncio.sleep(0)
        assert ws.transport.paused
        sink.full = False
        sink.space.set()
        await asyncio.sleep(0.01)
        assert not ws.transport.paused
        resumer.cancel()

    asyncio.run(scenario())


def test_frame_reader_notes_when_anything_last_arrived_even_without_market_data():
    """While every market is closed only heartbeat answers (and pings) arrive: they must still show
    the connection is alive, stamped once per read with the collector's clock."""
    from datetime import UTC, datetime

    stamps = iter([datetime(2026, 12, 5, 18, 0, tzinfo=UTC), datetime(2026, 12, 5, 18, 0, 30, tzinfo=UTC)])
    ws, sink = _WebSocket(), _Sink()
    ri.FrameReader(ws, sink, asyncio.Queue(), now=lambda: next(stamps))
    ws.data_received(_wire(OP_BINARY, b"library: heartbeat answer"))
    assert sink.last_read_at == datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
    ws.data_received(_wire(OP_PING, b"ping"))
    assert sink.last_read_at == datetime(2026, 12, 5, 18, 0, 30, tzinfo=UTC)


def test_heartbeats_follow_the_negotiated_interval_on_every_collector_plant():
    from collector_ecs.config import load_settings
    from collector_ecs.session import RithmicSession

    settings = load_settings({"RITHMIC_USER": "u", "RITHMIC_PASSWORD": "p", "RITHMIC_URL": "ws://127.0.0.1:9",
                              "RITHMIC_SYSTEM_NAME": "Rithmic Test", "CONFIG_FILE": "/nonexistent.json"})

    session = RithmicSession(settings, SimpleNamespace(now=None))
    session.build()
    for plant in (session.ticker, session.history):
        assert plant._heartbeat_loop.__qualname__.startswith("steady_heartbeats")
