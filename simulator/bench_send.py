"""How many messages per second the simulator sends on one core.

``python -m simulator.bench_send [--symbols 12] [--seconds 10] [--backlog 0]`` starts the
simulator at ``--rate 0`` (as fast as the reader reads), logs in one ticker session over a raw
socket, subscribes to every stream of N front-month contracts and discards what arrives. It
reports messages/s from ``/stats`` and the simulator process's CPU time (messages per CPU-second
of one core).

``--rate 0`` never sends an event before its time, at a nominal 50,000 messages/s per symbol, so
with fewer than about 10 symbols the simulator keeps pace without filling a core. ``--backlog S``
stops reading for S seconds first, so the measured window is spent catching up at full speed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import threading
import time
from urllib.parse import urlsplit

from async_rithmic.protocol_buffers.request_login_pb2 import RequestLogin
from async_rithmic.protocol_buffers.request_market_data_update_pb2 import RequestMarketDataUpdate

from rdc_common.clock import default_clock, pin_environment
from rdc_common.products import PRODUCTS, front_month
from simulator.testing import SimulatorProcess

BENCH_PRODUCTS = ("ES", "NQ", "YM", "RTY", "CL", "GC", "ZN", "6E", "SI", "NG", "ZB", "6J")


def _client_frame(payload: bytes) -> bytes:
    """A masked binary frame, as a client must send it."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0xFE]) + n.to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def _message(msg) -> bytes:
    body = msg.SerializeToString()
    return _client_frame(len(body).to_bytes(4, "big") + body)


class DrainingReader:
    """A ticker session on a plain socket that throws away everything it receives."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(4096)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:200]!r}")
        self.received = 0
        self._stop = threading.Event()

    def login(self, user: str, password: str) -> None:
        self.sock.sendall(
            _message(
                RequestLogin(
                    template_id=10,
                    template_version="3.9",
                    user=user,
                    password=password,
                    system_name="Rithmic Test",
                    app_name="bench",
                    app_version="1",
                    infra_type=RequestLogin.SysInfraType.TICKER_PLANT,
                )
            )
        )

    def subscribe(self, symbol: str, exchange: str) -> None:
        self.sock.sendall(
            _message(
                RequestMarketDataUpdate(
                    template_id=100,
                    user_msg=[symbol],
                    symbol=symbol,
                    exchange=exchange,
                    request=RequestMarketDataUpdate.Request.SUBSCRIBE,
                    update_bits=7,
                )
            )
        )

    def drain(self) -> None:
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        while not self._stop.is_set():
            n = self.sock.recv_into(view)
            if n == 0:
                return
            self.received += n

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _total(stats: dict) -> int:
    return sum(sum(streams.values()) for streams in stats["sent"].values())


def run(symbols: int, seconds: float, rate: int, backlog: float = 0.0) -> dict:
    # The market trades only while CME is open: pin the simulator's clock to an open instant
    # (unless the caller set one), so the rate measured never depends on the day it runs.
    pin_environment(os.environ)
    today = default_clock().today()
    contracts = [front_month(PRODUCTS[code], today) for code in BENCH_PRODUCTS[:symbols]]
    with SimulatorProcess(rate=rate, heartbeat_interval=3600) as sim:
        reader = DrainingReader(sim.url)
        reader.login("demo", "demo")
        for c in contracts:
            reader.subscribe(c.symbol, c.exchange)
        time.sleep(backlog)  # not reading: the simulator falls behind the clock and must catch up
        thread = threading.Thread(target=reader.drain, daemon=True)
        thread.start()
        time.sleep(2.0 if not backlog else 0.5)  # warm-up: caches, first seconds generated
        sent0, cpu0, t0, bytes0 = _total(sim.stats()), _cpu_seconds(sim.pid), time.monotonic(), reader.received
        time.sleep(seconds)
        sent1, cpu1, t1, bytes1 = _total(sim.stats()), _cpu_seconds(sim.pid), time.monotonic(), reader.received
        reader.close()
    wall = t1 - t0
    cpu = cpu1 - cpu0
    return {
        "symbols": [c.symbol for c in contracts],
        "rate_arg": rate,
        "backlog_s": backlog,
        "seconds": round(wall, 2),
        "messages": sent1 - sent0,
        "messages_per_second": round((sent1 - sent0) / wall),
        "megabytes_per_second": round((bytes1 - bytes0) / wall / 1e6, 1),
        "simulator_cpu_share": round(cpu / wall, 2),
        "messages_per_cpu_second": round((sent1 - sent0) / cpu) if cpu else None,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulator.bench_send", description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=12, help=f"contracts to subscribe, up to {len(BENCH_PRODUCTS)}")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window after a 2 s warm-up")
    p.add_argument("--rate", type=int, default=0, help="the simulator's --rate (default 0: as fast as it can)")
    p.add_argument("--backlog", type=float, default=0.0, help="seconds of not reading before measuring")
    args = p.parse_args(argv)
    print(json.dumps(run(min(args.symbols, len(BENCH_PRODUCTS)), args.seconds, args.rate, args.backlog)))


if __name__ == "__main__":
    main()
