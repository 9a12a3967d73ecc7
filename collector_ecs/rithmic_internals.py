"""Everything the collector needs from async_rithmic beyond its public API, in one place.

async_rithmic decodes every market-data message into a dict (MessageToDict, twice for
trades and quotes, plus once more in a debug f-string) before calling back, ignores the
answer to a subscription request, and hands websockets an SSL context even for ws://.
We replace the ticker plant's receive loop, and split its binary frames out of the TCP
stream ourselves (FrameReader), handing raw market-data frames to our own decoder and
everything else on to the library and websockets unchanged. `check_compatibility()` fails loudly when
a new async_rithmic release moves what this relies on; tests call it.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import websockets
from async_rithmic import RithmicClient
from async_rithmic import protocol_buffers as pb
from async_rithmic.enums import SysInfraType
from async_rithmic.exceptions import RithmicErrorResponse
from async_rithmic.objects import ReconnectionSettings, RetrySettings
from async_rithmic.plants.base import BasePlant
from async_rithmic.plants.ticker import TickerPlant
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.uri import parse_uri

from .observability import redact_library_logs

TICKER_AND_HISTORY = [SysInfraType.TICKER_PLANT, SysInfraType.HISTORY_PLANT]
ORDER_ONLY = [SysInfraType.ORDER_PLANT]
ALL_UPDATE_BITS = 1 | 2 | 4  # LAST_TRADE | BBO | ORDER_BOOK
_SUBSCRIBE = pb.request_market_data_update_pb2.RequestMarketDataUpdate.Request.SUBSCRIBE
_UNSUBSCRIBE = pb.request_market_data_update_pb2.RequestMarketDataUpdate.Request.UNSUBSCRIBE


class IncompatibleLibrary(RuntimeError):
    """The installed async_rithmic no longer has what the collector relies on."""


def check_compatibility() -> None:
    """Raise IncompatibleLibrary naming each internal that moved."""
    problems = []
    for name in ("_recv_loop", "_start_io_tasks", "_send_request", "_process_response", "_connect", "_login",
                 "_stop_background_tasks", "get_system_info", "_heartbeat_loop", "_send_heartbeat"):
        if not callable(getattr(BasePlant, name, None)):
            problems.append(f"BasePlant.{name} is gone")
    src = "".join(inspect.getsource(cls) for cls in BasePlant.__mro__ if cls.__module__.startswith("async_rithmic"))
    for needle in ("self._recv_loop()", "self._heartbeat_loop()", "_disconnect_event", "_reconnected_event",
                   "_inbound_queue", "_subscriptions", "heartbeat_interval", "ssl=self.ssl_context"):
        if needle not in src:
            problems.append(f"async_rithmic no longer uses {needle}")
    ticker_src = inspect.getsource(TickerPlant._login)
    if '_subscriptions["market_data"]' not in ticker_src:
        problems.append("TickerPlant._login no longer resubscribes from _subscriptions['market_data']")
    init_src = inspect.getsource(RithmicClient.__init__)
    for needle in ("self.ssl_context", "reconnection_settings", "retry_settings", "self.plants",
                   "self.credentials"):
        if needle not in init_src:
            problems.append(f"RithmicClient.__init__ no longer sets {needle}")
    # FrameReader: the connection async_rithmic opens is websockets' asyncio one, whose
    # data_received we take over and whose protocol tells us max_size and extensions.
    if websockets.connect is not websockets.asyncio.client.connect:
        problems.append("websockets.connect is no longer the asyncio ClientConnection")
    owner = next((k for k in ClientConnection.__mro__ if "data_received" in vars(k)), None)
    if owner is None or not owner.__module__.startswith("websockets"):  # asyncio.Protocol's is a no-op
        problems.append("websockets ClientConnection.data_received is gone")
    protocol = ClientProtocol(parse_uri("ws://localhost/"))
    for attr in ("max_size", "extensions"):
        if not hasattr(protocol, attr):
            problems.append(f"websockets Protocol.{attr} is gone")
    if problems:
        raise IncompatibleLibrary("; ".join(problems))


class StormGuardReconnection(ReconnectionSettings):
    """The library's backoff, never shorter than `floor_s`, which the collector raises when
    reconnects come too often (a ForcedLogout loop must not become a reconnect storm)."""

    floor_s: float = 0.0

    def get_delay(self, attempt: int) -> float:
        return max(super().get_delay(attempt), self.floor_s)


def ssl_context_for(url: str, ca_file: str | None, library_context: ssl.SSLContext) -> ssl.SSLContext | None:
    """None for ws:// (websockets refuses a context there); for wss:// Rithmic's own CA, plus ours."""
    if url.startswith("ws://"):
        return None
    if ca_file:
        library_context.load_verify_locations(ca_file)
    return library_context


def make_client(*, user: str, password: str, system_name: str, app_name: str, app_version: str,
                url: str, ca_file: str | None, max_reconnect_delay: float,
                request_timeout: float = 15.0) -> RithmicClient:
    client = RithmicClient(
        user=user, password=password, system_name=system_name, app_name=app_name,
        app_version=app_version, url=url,
        # max_delay must be finite: the library's default of None makes min() raise inside
        # its reconnect loop, which then never reconnects.
        reconnection_settings=StormGuardReconnection(
            max_retries=None, backoff_type="exponential", interval=2, max_delay=max_reconnect_delay,
            jitter_range=(0.0, 0.5)),
        retry_settings=RetrySettings(max_retries=2, timeout=request_timeout, jitter_range=(0.1, 0.3)),
    )
    client.ssl_context = ssl_context_for(url, ca_file, client.ssl_context)
    redact_library_logs()
    return client


class FrameSink(Protocol):
    """What the fast receive loop hands frames to (the collector's Ingest)."""

    # When anything (market data, a heartbeat answer, a ping) last arrived on the socket: set once
    # per TCP read, so a dead connection is noticed even while no market sends data.
    last_read_at: datetime | None

    @property
    def full(self) -> bool: ...

    # True: consumed; False: pass on to async_rithmic. `received`: when its TCP read arrived.
    def handle(self, frame: bytes, received: datetime | None = None) -> bool: ...

    async def wait_for_space(self) -> None: ...

    def on_connection_lost(self, exc: BaseException | None) -> None: ...


READ_SIZE = 64 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)

_BINARY_FIN = 0x82  # FIN bit + binary opcode, no RSV bits: a whole, uncompressed binary message


class FrameReader:
    """Reads the ticker plant's WebSocket frames straight off the transport.

    websockets spends about 40% of the collector's CPU per message (its sans-I/O frame
    generator, then a queue and a future per message in its Assembler). Rithmic's market data
    arrives as unfragmented, unmasked binary frames, which we split out of each TCP read
    ourselves. Every other frame (ping, pong, close) is handed to websockets unchanged, so it
    still answers pings and runs the closing handshake. The first frame we do not expect
    (fragmented, compressed, text, over max_size) hands the socket back to websockets for good,
    so that message and every later one take the ordinary path in order.
    """

    __slots__ = ("ws", "sink", "queue", "tail", "max_size", "_original", "paused", "_pause_wanted", "active", "now")

    def __init__(self, ws, sink: FrameSink, queue: asyncio.Queue, now: Callable[[], datetime] | None = None):
        self.ws, self.sink, self.queue = ws, sink, queue
        # The receive stamp's clock: the collector's (rdc_common.clock), real time by default.
        self.now = now or _utcnow
        self.tail = b""
        self.max_size = ws.protocol.max_size
        self._original = ws.data_received
        self.paused = False
        self._pause_wanted = asyncio.Event()
        # permessage-deflate frames need websockets' decompressor: leave such sessions alone.
        self.active = not ws.protocol.extensions
        if self.active:
            ws.data_received = self.data_received
            # asyncio reads up to 256 KiB per callback: ~2,000 frames, tens of ms during which
            # the writer's database answers wait. Smaller reads keep its round trips short.
            if isinstance(getattr(ws.transport, "max_size", None), int):
                ws.transport.max_size = READ_SIZE

    def release(self, rest: bytes = b"") -> None:
        """Give the socket back to websockets, starting with `rest`."""
        if self.active:
            self.active = False
            del self.ws.data_received  # the class's own method again
        self.tail = b""
        if rest:
            self._original(rest)

    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        end_of_data = len(data)
        pos = 0
        sink = self.sink
        handle, put = sink.handle, self.queue.put_nowait
        # One stamp per read: every frame in it arrived together (and the connection is alive).
        received = sink.last_read_at = self.now()
        max_size = self.max_size
        while end_of_data - pos >= 2:
            first, length = data[pos], data[pos + 1]
            if first != _BINARY_FIN or length & 0x80:
                if first & 0xF8 == 0x88 and length <= 125:  # close, ping or pong; unmasked, short
                    end = pos + 2 + length
                    if end > end_of_data:
                        break
                    self._original(data[pos:end])
                    pos = end
                    continue
                self.release(data[pos:])
                return
            if length < 126:
                start = pos + 2
            elif length == 126:
                if end_of_data - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                start = pos + 4
            else:
                if end_of_data - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                start = pos + 10
            if max_size is not None and length > max_size:
                self.release(data[pos:])  # websockets closes with 1009 (message too big)
                return
            end = start + length
            if end > end_of_data:
                break
            frame = data[start:end]
            if not handle(frame, received):
                put(frame)
            pos = end
        self.tail = data[pos:] if pos < end_of_data else b""
        # Backpressure once per read: stop reading the socket while the writer is full, so
        # memory stays bounded whatever the gateway sends (TCP pushes back on the sender).
        if sink.full and not self.paused:
            self.paused = True
            self.ws.transport.pause_reading()
            self._pause_wanted.set()

    async def resume_when_space(self) -> None:
        """Owned by the receive loop: resume reading once the writer has room."""
        while True:
            await self._pause_wanted.wait()
            self._pause_wanted.clear()
            await self.sink.wait_for_space()
            self.paused = False
            self.ws.transport.resume_reading()


def install_fast_path(plant: BasePlant, sink: FrameSink, now: Callable[[], datetime] | None = None) -> None:
    """Replace the plant's receive loop: market data goes to `sink`, the rest to the library.
    `now` stamps each read's arrival (the collector's clock)."""

    async def fast_recv_loop() -> None:
        ws = plant.ws
        queue = plant._inbound_queue
        handle = sink.handle
        reader = FrameReader(ws, sink, queue, now)
        resumer = asyncio.create_task(reader.resume_when_space())
        n = 0
        try:
            # Messages websockets still assembles: any that arrived before the reader was
            # installed, and all of them once it has handed the socket back. recv() is also
            # where a closed connection surfaces either way.
            while True:
                frame = await ws.recv()
                sink.last_read_at = reader.now()  # this path is websockets' own, never the fast one
                if not handle(frame):
                    queue.put_nowait(frame)
                n += 1
                # Backpressure, checked every 1024 frames (the check is not free).
                if not n & 1023 and sink.full:
                    await sink.wait_for_space()
        except ConnectionClosed as exc:
            plant.logger.warning("WebSocket connection closed; signalling reconnect")
            sink.on_connection_lost(exc)
            plant._disconnect_event.set()
        except asyncio.CancelledError:
            return
        finally:
            resumer.cancel()

    plant._recv_loop = fast_recv_loop


async def send_market_data_request(plant: BasePlant, symbol: str, exchange: str, subscribe: bool,
                                   user_msg: str) -> None:
    """Subscribe/unsubscribe trades, BBO and book with a user_msg, so the answer can be matched
    (async_rithmic's own call sends none), and keep the library's resubscribe list in step."""
    sub = (symbol, exchange, ALL_UPDATE_BITS)
    if subscribe:
        plant._subscriptions["market_data"].add(sub)
    else:
        plant._subscriptions["market_data"].discard(sub)
    await plant._send_request(
        template_id=100, user_msg=[user_msg], symbol=symbol, exchange=exchange,
        request=_SUBSCRIBE if subscribe else _UNSUBSCRIBE, update_bits=ALL_UPDATE_BITS,
    )


def forget_subscription(plant: BasePlant, symbol: str, exchange: str) -> None:
    plant._subscriptions["market_data"].discard((symbol, exchange, ALL_UPDATE_BITS))


class LoginRefused(RithmicErrorResponse):
    """The gateway answered RequestLogin with an error code (13: permission denied)."""

    def __init__(self, rp_code: list[str]):
        self.rp_code = rp_code
        super().__init__(f"login refused: rp_code {rp_code}")


def guard_login(plant: BasePlant, on_refused=None) -> None:
    """Surface a refused login as LoginRefused with the gateway's code.

    async_rithmic raises the refusal inside its background process loop, where it is only
    logged, and its login then fails with an AttributeError on the missing response. We note
    the code as the response passes and raise it in place of that AttributeError, after
    awaiting `on_refused(exc)` (the library's reconnect loop then retries with whatever
    credentials are current).
    """
    original_process = plant._process_response
    original_login = plant._login

    async def process_response(response):
        if response.template_id == 11 and response.rp_code and response.rp_code[0] != "0":
            plant._rdc_login_refusal = list(response.rp_code)
        return await original_process(response)

    async def login():
        plant._rdc_login_refusal = None
        try:
            return await original_login()
        except Exception as exc:
            refusal = getattr(plant, "_rdc_login_refusal", None)
            if refusal is None:
                raise
            # async_rithmic leaves the refused socket open, and every retry opens another.
            await close_quietly(plant)
            err = LoginRefused(refusal)
            if on_refused is not None:
                await on_refused(err)
            raise err from exc

    plant._process_response = process_response
    plant._login = login


def set_credentials(client: RithmicClient, user: str, password: str) -> None:
    """Every plant logs in with client.credentials, so replacing them here is enough."""
    client.credentials["user"] = user
    client.credentials["password"] = password


def set_reconnect_floor(client: RithmicClient, seconds: float) -> None:
    settings = client.reconnection_settings
    if isinstance(settings, StormGuardReconnection):
        settings.floor_s = seconds


def plant_ready(plant: BasePlant) -> bool:
    """Connected and not in the middle of the library's reconnect: a request sent during a
    reconnect makes async_rithmic reconnect twice and leak a WebSocket."""
    return plant.is_connected and plant._reconnected_event.is_set()


def heartbeat_interval(plant: BasePlant) -> float:
    return float(plant.heartbeat_interval or 30)


def steady_heartbeats(plant: BasePlant) -> None:
    """Heartbeats at the interval the gateway asked for, from the first login on.

    async_rithmic's heartbeat loop starts before the login and sleeps the interval it has then
    (its default, 30 s), so a gateway that asks for less gets its first heartbeat late and drops
    the session. This loop re-reads the negotiated interval at least once a second.
    """
    async def heartbeat_loop():
        sent = time.monotonic()
        while True:
            interval = heartbeat_interval(plant)
            wait = sent + max(interval - 1, interval / 2) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            try:
                await plant._send_heartbeat()
            except (ConnectionClosed, OSError) as exc:  # the receive loop notices and reconnects
                plant.logger.warning(f"Heartbeat failed: {exc}")
            sent = time.monotonic()

    plant._heartbeat_loop = heartbeat_loop


async def close_quietly(plant: BasePlant, timeout: float = 2.0) -> None:
    """Close the plant's socket if one is open; a gateway that does not answer the close is dropped."""
    ws = plant.ws
    if ws is None:
        return
    try:
        await asyncio.wait_for(ws.close(), timeout)
    except Exception:  # already closed, or no answer: make sure the socket is gone
        if ws.transport is not None:
            ws.transport.abort()


def abort_connection(plant: BasePlant) -> None:
    """Drop a stalled socket at once; the library's reconnect loop takes it from there."""
    ws = plant.ws
    if ws is not None and ws.transport is not None:
        ws.transport.abort()


async def gateway_systems(client: RithmicClient, timeout: float, plant_type: str = "ticker") -> list[str]:
    """The system names the gateway offers, asked on a connection of its own (as Rithmic expects:
    RequestRithmicSystemInfo, close, then a new connection for the login)."""
    plant = client.plants[plant_type]
    plant.ws = await asyncio.wait_for(
        websockets.connect(client.credentials["gateway"], ssl=client.ssl_context), timeout=timeout)
    try:
        info = await asyncio.wait_for(plant.get_system_info(), timeout=timeout)
    finally:
        await close_quietly(plant)
        plant.ws = None
    return list(info.system_name) if info is not None else []


async def shut_down(client: RithmicClient, timeout: float) -> None:
    """Log out of every connected plant, then stop every plant's background tasks and sockets:
    client.disconnect() skips a plant that is between connections, leaving its reconnect loop
    running (and about to log in again)."""
    await client.disconnect(timeout=timeout)
    for plant in client.plants.values():
        await plant._stop_background_tasks()
        await close_quietly(plant)


def app_presented(client: RithmicClient) -> tuple[str, str]:
    """The application name and version every plant's RequestLogin carries."""
    return client.credentials["app_name"], client.credentials["app_version"]


def on_login(client: RithmicClient, plant_type: str, callback: Callable[[], None]) -> None:
    """Call `callback` each time `plant_type` has (re)logged in."""
    async def _cb(kind):
        if kind == plant_type:
            res = callback()
            if inspect.isawaitable(res):
                await res
    client.on_connected += _cb
