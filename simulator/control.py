"""The HTTP control API for tests and demos: counters, fault injection and the message rate.

- ``GET /stats``: what was sent, per symbol and stream, and the open connections
- ``POST /faults/disconnect``: drop every connection abruptly
- ``POST /faults/stall?seconds=N``: send no market data for N seconds, keep connections open
- ``POST /faults/forced-logout``: send ForcedLogout (template 77) to every session, then close
- ``POST /faults/garbage``: send an unknown template, a bad length prefix and a truncated message
  to every ticker session (not counted in /stats)
- ``POST /rate?value=N``: messages per second per symbol from the next whole second
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("simulator.control")

MAX_REQUEST = 16 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _number(query: dict, name: str, kind=float, minimum=0):
    values = query.get(name)
    if not values:
        raise HttpError(400, f"missing query parameter '{name}', for example ?{name}=5")
    try:
        value = kind(values[0])
    except ValueError:
        raise HttpError(400, f"'{name}' must be a number, got '{values[0][:20]}'") from None
    if value < minimum:
        raise HttpError(400, f"'{name}' must be {minimum} or more")
    return value


class ControlApi:
    """Routes control requests to the simulator it drives."""

    def __init__(self, sim):
        self.sim = sim
        self.routes = {
            ("GET", "/stats"): self.stats,
            ("GET", "/rate"): self.get_rate,
            ("POST", "/rate"): self.set_rate,
            ("POST", "/faults/disconnect"): self.disconnect,
            ("POST", "/faults/stall"): self.stall,
            ("POST", "/faults/forced-logout"): self.forced_logout,
            ("POST", "/faults/garbage"): self.garbage,
        }

    def handle(self, method: str, target: str) -> tuple[int, dict]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        route = self.routes.get((method, path))
        if route is None:
            if any(p == path for _, p in self.routes):
                allowed = ", ".join(m for m, p in self.routes if p == path)
                raise HttpError(405, f"{method} is not allowed on {path}: use {allowed}")
            known = ", ".join(f"{m} {p}" for m, p in self.routes)
            raise HttpError(404, f"no such endpoint {method} {path}; endpoints: {known}")
        return 200, route(query)

    def stats(self, query) -> dict:
        return self.sim.stats()

    def get_rate(self, query) -> dict:
        return {"rate": self.sim.rates.at(int(self.sim.clock.now()))}

    def set_rate(self, query) -> dict:
        value = _number(query, "value", int)
        effective = self.sim.set_rate(value)
        return {"rate": value, "effective_from": effective}

    def disconnect(self, query) -> dict:
        return {"dropped": self.sim.drop_connections()}

    def stall(self, query) -> dict:
        seconds = _number(query, "seconds", float)
        self.sim.stall(seconds)
        return {"stalled_for_s": seconds}

    def forced_logout(self, query) -> dict:
        return {"logged_out": self.sim.forced_logout()}

    def garbage(self, query) -> dict:
        return {"sessions": self.sim.send_garbage()}

    # HTTP/1.1, one request per connection
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._respond(reader)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()
            return
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, dict]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST:
            return 400, {"error": "request too large"}
        lines = head.decode("latin-1").split("\r\n")
        request = lines[0].split(" ")
        if len(request) != 3:
            return 400, {"error": "malformed request line"}
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        if length:
            await reader.readexactly(min(length, MAX_REQUEST))
        method, target = request[0], request[1]
        try:
            status, body = self.handle(method, target)
        except HttpError as exc:
            return exc.status, {"error": str(exc)}
        log.info("control", extra={"method": method, "target": target})
        return status, body
