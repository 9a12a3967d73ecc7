"""A minimal RFC 6455 WebSocket server on asyncio's Protocol API.

Written for throughput: market data leaves as pre-encoded frames joined into one
``transport.write`` per batch, and writers wait on the transport's flow control instead of
queueing without bound. It speaks exactly what async_rithmic's client (the websockets library)
needs: the HTTP Upgrade handshake, binary and control frames, fragmentation, ping/pong, close.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging

from simulator.wire import ws_frame

log = logging.getLogger("simulator.websocket")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds a TCP connection may take to upgrade before it is closed
# Seconds a closing connection may take to flush what is still buffered for it (a peer that has
# stopped reading never takes it) before the TCP connection is dropped.
CLOSE_TIMEOUT = 2.0
MAX_MESSAGE = 1024 * 1024
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WRITE_HIGH_WATER = 512 * 1024
WRITE_LOW_WATER = 128 * 1024


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


class WebSocketConnection(asyncio.Protocol):
    """One server-side WebSocket. ``handler`` gets ``on_open(conn)``, ``on_message(conn, bytes)``
    and ``on_close(conn)``."""

    def __init__(self, handler):
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.peer = None
        self.open = False
        self.closed = False
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._writable = asyncio.Event()
        self._writable.set()
        self._close_sent = False
        self._handshake_timer: asyncio.TimerHandle | None = None

    # asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        self._handshake_timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)

    def _handshake_expired(self) -> None:
        if not self.open and self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        was_open = self.open
        self.open = False
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.closed = True
        self._writable.set()  # release writers so they notice the end
        if was_open:
            self.handler.on_close(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.open:
            if not self._handshake():
                return
        try:
            self._read_frames()
        except ValueError as exc:
            log.info("closing websocket from %s: %s", self.peer, exc)
            self.close(1002, str(exc)[:100])

    # handshake
    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HANDSHAKE:
                self._http_error(431, "request headers too large")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        lines = head.split("\r\n")
        request = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        upgrade = headers.get("upgrade", "").lower() == "websocket"
        connection = "upgrade" in [t.strip().lower() for t in headers.get("connection", "").split(",")]
        key = headers.get("sec-websocket-key")
        if len(request) < 2 or request[0] != "GET" or not (upgrade and connection and key):
            self._http_error(400, "this is a Rithmic R|Protocol WebSocket endpoint: connect with a WebSocket client")
            return False
        if headers.get("sec-websocket-version") != "13":
            self._http_error(426, "WebSocket version 13 required", extra="Sec-WebSocket-Version: 13\r\n")
            return False
        response = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        )
        self.transport.write(response.encode())
        self._handshake_timer.cancel()
        self.open = True
        self.handler.on_open(self)
        return True

    def _http_error(self, status: int, reason: str, extra: str = "") -> None:
        body = (reason + "\n").encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n".encode()
            + body
        )
        self.transport.close()

    # frames from the client
    def _read_frames(self) -> None:
        buf = self._buffer
        pos = 0
        while self.open:
            if len(buf) - pos < 2:
                break
            b0, b1 = buf[pos], buf[pos + 1]
            fin, opcode, masked, length = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if not masked:
                raise ValueError("client frames must be masked")
            if length > MAX_MESSAGE:
                self.close(1009, "message too big")
                return
            if len(buf) - pos < head + 4 + length:
                break
            mask = bytes(buf[pos + head : pos + head + 4])
            start = pos + head + 4
            payload = _unmask(bytes(buf[start : start + length]), mask)
            pos = start + length
            self._on_frame(bool(fin), opcode, payload)
        del buf[:pos]

    def _on_frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.write(ws_frame(OP_PONG, payload))
            return
        if opcode == OP_PONG:
            return
        if opcode == OP_CLOSE:
            code = payload[:2] if len(payload) >= 2 else b"\x03\xe8"
            self.close(int.from_bytes(code, "big"), "")
            return
        if opcode == OP_CONT:
            if not self._fragments:
                raise ValueError("continuation frame without a first fragment")
            self._fragments.append(payload)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments:
                raise ValueError("new message inside a fragmented one")
            self._fragment_opcode = opcode
            self._fragments = [payload]
        else:
            raise ValueError(f"unknown opcode {opcode}")
        if not fin:
            if sum(len(p) for p in self._fragments) > MAX_MESSAGE:
                self.close(1009, "message too big")
            return
        message = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_opcode == OP_TEXT:
            self.close(1003, "R|Protocol messages are binary")
            return
        self.handler.on_message(self, message)

    # writing
    @property
    def writable(self) -> bool:
        return self.open and not self.transport.is_closing()

    def write(self, data: bytes) -> bool:
        """Write frames; False (and nothing written) when the connection is closing."""
        if not self.open or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (or the socket is gone)."""
        await self._writable.wait()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the TCP connection after it (a server closes first)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.open and not self._close_sent:
            self._close_sent = True
            self.transport.write(ws_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:120]))
        self.transport.close()
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort_if_still_open)

    def abort_if_still_open(self) -> None:
        if not self.closed:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a network failure would."""
        if self.transport is not None:
            self.transport.abort()
