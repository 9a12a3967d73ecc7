"""The simulator service: the gateway listener, the control API, sessions, counters and faults."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import defaultdict
from pathlib import Path

from rdc_common import calendar
from simulator import wire
from simulator.config import SimulatorConfig
from simulator.control import ControlApi
from simulator.market import Market, RateTimeline
from simulator.session import Session
from simulator.websocket import WebSocketConnection

log = logging.getLogger("simulator")


class Simulator:
    """Owns the listeners and every session; ``start()`` opens sockets, ``stop()`` closes them."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.clock = config.clock
        self.rates = RateTimeline(config.rate)
        self.market = Market(config.seed, self.rates)
        # Faults are test controls: their durations are real seconds (time.monotonic), whatever
        # the market clock's speed, so a stall outlasts the collector's real-time watchdog.
        self.stall_until = 0.0
        self.cert_file: Path | None = None
        self._temp_cert_dir: Path | None = None
        self._sessions: dict[WebSocketConnection, Session] = {}
        # per symbol: last_trade, bbo, order_book, last_trade_snapshot
        self._sent: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._sent_mbo: dict[str, int] = defaultdict(int)
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self.control = ControlApi(self)

    # lifecycle
    async def start(self) -> None:
        cfg = self.config
        # Trading hours are read for every second the market generates; load them before the first
        # client, off the event loop (computing them imports pandas when nothing is cached yet).
        await asyncio.to_thread(calendar.warm, None, self.clock.now())
        ssl_ctx = None
        if cfg.tls:
            from simulator.tls import create_certificate, server_context

            self.cert_file, key_file = create_certificate(cfg.cert_dir, cfg.host)
            if cfg.cert_dir is None:
                self._temp_cert_dir = self.cert_file.parent
            ssl_ctx = server_context(self.cert_file, key_file)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: WebSocketConnection(self), cfg.host, cfg.port, ssl=ssl_ctx, reuse_address=True
        )
        self._control = await asyncio.start_server(self.control.serve, cfg.host, cfg.control_port)

    async def stop(self) -> None:
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for conn in list(self._sessions):
            conn.close(1001, "simulator shutting down")
        for session in list(self._sessions.values()):
            session.stop()
        for server in (self._server, self._control):
            if server is not None:
                await server.wait_closed()
        if self._temp_cert_dir is not None:
            shutil.rmtree(self._temp_cert_dir, ignore_errors=True)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def control_port(self) -> int:
        return self._control.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.tls else "ws"
        return f"{scheme}://{self.config.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.config.host}:{self.control_port}"

    # WebSocket handler callbacks
    def on_open(self, conn: WebSocketConnection) -> None:
        session = Session(self, conn)
        self._sessions[conn] = session
        session.start()

    def on_message(self, conn: WebSocketConnection, message: bytes) -> None:
        session = self._sessions.get(conn)
        if session is not None:
            session.on_message(message)

    def on_close(self, conn: WebSocketConnection) -> None:
        session = self._sessions.pop(conn, None)
        if session is not None:
            session.stop()

    # counters
    def count_sent(self, counts: dict[str, list[int]], mbo: dict[str, int]) -> None:
        for symbol, added in counts.items():
            c = self._sent[symbol]
            for k, n in enumerate(added):
                c[k] += n
        for symbol, n in mbo.items():
            self._sent_mbo[symbol] += n

    def stats(self) -> dict:
        plants: dict[str, int] = defaultdict(int)
        for s in self._sessions.values():
            plants[
                {1: "ticker", 2: "order", 3: "history", 4: "pnl", 5: "repository"}.get(s.plant, "not_logged_in")
            ] += 1
        return {
            "sent": {
                symbol: {"last_trade": c[0], "bbo": c[1], "order_book": c[2], "last_trade_snapshot": c[3]}
                for symbol, c in sorted(self._sent.items())
            },
            "depth_by_order": dict(sorted(self._sent_mbo.items())),
            "connections": len(self._sessions),
            "sessions": dict(sorted(plants.items())),
            "rate": self.rates.at(int(self.clock.now())),
            "stalled": self.stalled(),
            "clock": self.clock.now_dt().isoformat(),
        }

    # faults and controls
    def drop_connections(self) -> int:
        conns = list(self._sessions)
        for conn in conns:
            conn.abort()
        log.warning("fault: dropped every connection", extra={"connections": len(conns)})
        return len(conns)

    def stall(self, seconds: float) -> float:
        self.stall_until = max(self.stall_until, time.monotonic() + seconds)
        log.warning("fault: market data stalled", extra={"seconds": seconds})
        return self.stall_until

    def stalled(self) -> bool:
        return self.stall_until > time.monotonic()

    def forced_logout(self) -> int:
        frame = wire.encode(wire.build("ForcedLogout"))
        sessions = [(c, s) for c, s in self._sessions.items() if s.plant is not None]
        for conn, _session in sessions:
            conn.write(frame)
            conn.close(1000, "forced logout")
        log.warning("fault: forced logout", extra={"sessions": len(sessions)})
        return len(sessions)

    def send_garbage(self) -> int:
        """Frames a client must survive, to every ticker session; not counted in ``sent``."""
        garbage = (
            wire.frame(wire.field_varint(wire.F_TEMPLATE_ID, 358)),  # a template the client does not know
            b"\x82\x09" + (99).to_bytes(4, "big") + b"\x08\x01\x02\x03\x04",  # length prefix says 99, has 5
            wire.frame(
                wire.field_varint(wire.F_TEMPLATE_ID, 150) + wire.tag(wire.F_SYMBOL, 2) + b"\x32ab"
            ),  # truncated
        )
        sessions = [c for c, s in self._sessions.items() if s.plant == 1]
        for conn in sessions:
            conn.write(b"".join(garbage))
        log.warning("fault: garbage frames sent", extra={"sessions": len(sessions)})
        return len(sessions)

    def set_rate(self, rate: int) -> int:
        effective = self.rates.change(rate, self.clock.now())
        log.info("rate changed", extra={"rate": rate, "effective_from": effective})
        return effective
