"""Settings of one simulator process, built once from the command line."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from rdc_common.clock import Clock, ClockError, LiveClock, clock_from_env

SYSTEMS = ("Rithmic Paper Trading", "Rithmic Test")


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    control_port: int = 8766
    seed: int = 1
    rate: int = 200  # messages per second per subscribed symbol; 0 = as fast as the client reads
    users: dict[str, str] = field(default_factory=lambda: {"demo": "demo"})
    tls: bool = False
    cert_dir: Path | None = None
    heartbeat_interval: float = 60.0
    # "Now" for the market, listings and front months: RDC_CLOCK_* (rdc_common.clock), else real time.
    clock: Clock = field(default_factory=LiveClock)
    systems: tuple[str, ...] = SYSTEMS


def _users(raw: str) -> dict[str, str]:
    users = {}
    for item in raw.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user:
            raise argparse.ArgumentTypeError(f"'{item}' is not user:password (example: --users demo:demo,alice:s3cret)")
        users[user] = password
    return users


def _non_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local Rithmic R|Protocol gateway with a deterministic synthetic market.",
        epilog=EPILOG,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_non_negative, default=8765, help="WebSocket port (default 8765, 0 = any free)")
    p.add_argument(
        "--control-port", type=_non_negative, default=None, help="HTTP control port (default port + 1, 0 = any free)"
    )
    p.add_argument("--seed", type=int, default=1, help="market seed: same seed, same market (default 1)")
    p.add_argument(
        "--rate",
        type=_non_negative,
        default=200,
        help="messages per second per subscribed symbol, with bursts (default 200; 0 = as fast as the client reads)",
    )
    p.add_argument("--users", type=_users, default={"demo": "demo"}, help="user:password,... (default demo:demo)")
    p.add_argument("--tls", action="store_true", help="serve wss:// with a self-signed certificate")
    p.add_argument("--cert-dir", type=Path, default=None, help="where --tls writes its certificate (default: temp dir)")
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=60.0,
        help="seconds a session may stay silent before it is dropped (default 60)",
    )
    return p


EPILOG = (
    "The market follows RDC_CLOCK_START / RDC_CLOCK_SPEED / RDC_CLOCK_ANCHOR when they are set "
    "(simulated time, shared with the collector and the API), else the real clock."
)


def from_args(argv: list[str] | None = None, env=None) -> SimulatorConfig:
    args = parser().parse_args(argv)
    try:
        clock = clock_from_env(os.environ if env is None else env)
    except ClockError as exc:
        parser().error(str(exc))
    if args.control_port is None:
        control_port = 0 if args.port == 0 else args.port + 1
    else:
        control_port = args.control_port
    if args.heartbeat_interval <= 0:
        parser().error("--heartbeat-interval must be positive")
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        control_port=control_port,
        seed=args.seed,
        rate=args.rate,
        users=args.users,
        tls=args.tls,
        cert_dir=args.cert_dir,
        heartbeat_interval=args.heartbeat_interval,
        clock=clock,
    )
