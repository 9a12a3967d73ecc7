"""What decoding costs per message, before and after trades kept both clocks (issue 20), measured on the
same frames in one process: `python -m bench.decode_cost --frames N` prints one JSON line.

The frames are the simulator's own (its tapes at --rate 0, the four front months, one message each, with
the 4-byte length prefix as the collector's frame reader hands them over). Two figures, each the best
of several interleaved rounds:

    trade    parsing.decode_trade per LastTrade message
    handle   Ingest.handle per message of the whole mix (about 14% trades), into a writer that only
             keeps the rows, the collector's hot path

"before" is the decoding as it was: a LastTrade read for ssboe/usecs only (the gateway's clock, no
nanoseconds, no gateway column) and every timestamp built with datetime.replace. It is put in place
by swapping the module globals the hot path calls, so everything else (the frame split, the
bookkeeping, the recent-trades ring) is today's code in both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import time
from contextlib import contextmanager

from async_rithmic import protocol_buffers as pb

from collector_ecs import ingest as ingest_mod
from collector_ecs import parsing
from collector_ecs.ingest import Ingest

UTC = dt.UTC
SECOND = 1_795_600_000  # a fixed second of market time, so every run decodes the same frames
_LastTrade = pb.last_trade_pb2.LastTrade
_AGGRESSOR = (None, "BUY", "SELL")

# -- the decoding as it was before issue 20 -----------------------------------------------------

_BEFORE_SECONDS: dict[int, dt.datetime] = {}


def exchange_time_before(ssboe: int, usecs: int) -> dt.datetime:
    base = _BEFORE_SECONDS.get(ssboe)
    if base is None:
        if len(_BEFORE_SECONDS) >= 4096:
            _BEFORE_SECONDS.clear()
        base = _BEFORE_SECONDS[ssboe] = dt.datetime.fromtimestamp(ssboe, UTC)
    return base.replace(microsecond=usecs)


def decode_trade_before(payload: bytes, received_at: dt.datetime) -> tuple | None:
    m = _LastTrade.FromString(payload)
    bits = m.presence_bits
    if m.is_snapshot or not (bits & 1):
        return None
    aggressor = m.aggressor
    return (
        exchange_time_before(m.ssboe, m.usecs), m.symbol, m.exchange,
        m.trade_price, m.trade_size, _AGGRESSOR[aggressor] if aggressor < 3 else None,
        m.volume if bits & 8 else None, received_at, False,
    )


@contextmanager
def decoding_before():
    """The hot path with the old trade decoder and the old timestamp construction."""
    saved = ingest_mod.decode_trade, parsing.exchange_time
    ingest_mod.decode_trade, parsing.exchange_time = decode_trade_before, exchange_time_before
    try:
        yield
    finally:
        ingest_mod.decode_trade, parsing.exchange_time = saved


# -- frames --------------------------------------------------------------------------------------

def capture(pairs: list[tuple[str, str]], frames: int) -> list[bytes]:
    """About `frames` messages of the simulator's market for the (symbol, exchange) pairs, second by
    second, as the collector receives them (length prefix + protobuf)."""
    from rdc_common.products import contract
    from simulator.market import Market, RateTimeline

    market = Market(seed=1, rates=RateTimeline(0))
    insts = [market.instrument(contract(symbol, dt.date(2026, 11, 24))) for symbol, _ in pairs]
    out: list[bytes] = []
    second = SECOND
    while len(out) < frames:
        for inst in insts:
            tape = market.tape(inst, second, cache=False).complete()
            blob = tape.frames(7, 0, len(tape))
            i = 0
            while i < len(blob):
                length, head = blob[i + 1] & 0x7F, 2
                if length == 126:
                    length, head = int.from_bytes(blob[i + 2: i + 4], "big"), 4
                out.append(blob[i + head: i + head + length])
                i += head + length
        second += 1
    return out[:frames]


class _KeepRows:
    """The writer's producer side, keeping rows in lists (cleared between rounds)."""

    full = False

    def __init__(self) -> None:
        self.buffers: dict[str, list] = {t: [] for t in parsing.COLUMNS}

    def appender(self, table: str):
        return self.buffers[table].append

    def clear(self) -> None:
        for b in self.buffers.values():
            b.clear()


def _round_handle(frames: list[bytes], received: dt.datetime) -> float:
    writer = _KeepRows()
    sink = Ingest(writer)
    handle = sink.handle
    gc.collect()
    t0 = time.perf_counter()
    for f in frames:
        handle(f, received)
    elapsed = time.perf_counter() - t0
    assert sink.messages == len(frames) and not sink.malformed, "every frame decodes"
    return elapsed / len(frames)


def _round_trade(decode, payloads: list[bytes], received: dt.datetime) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for p in payloads:
        decode(p, received)
    return (time.perf_counter() - t0) / len(payloads)


def measure(frames: list[bytes], rounds: int = 5) -> dict:
    received = dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    trades = [p for tid, p in map(parsing.split_frame, frames) if tid == parsing.T_LAST_TRADE]
    best = {"trade_before": float("inf"), "trade_after": float("inf"),
            "handle_before": float("inf"), "handle_after": float("inf")}
    for _ in range(rounds):  # interleaved, so a burst of load on the machine hits both alike
        with decoding_before():
            best["trade_before"] = min(best["trade_before"], _round_trade(decode_trade_before, trades, received))
            best["handle_before"] = min(best["handle_before"], _round_handle(frames, received))
        best["trade_after"] = min(best["trade_after"], _round_trade(parsing.decode_trade, trades, received))
        best["handle_after"] = min(best["handle_after"], _round_handle(frames, received))
    ns = {k: round(v * 1e9) for k, v in best.items()}
    return {
        "frames": len(frames), "trade_share": round(len(trades) / len(frames), 3), "rounds": rounds,
        "trade_ns_before": ns["trade_before"], "trade_ns_after": ns["trade_after"],
        "trade_change_pct": round(100 * (best["trade_after"] / best["trade_before"] - 1), 1),
        "handle_ns_before": ns["handle_before"], "handle_ns_after": ns["handle_after"],
        "handle_change_pct": round(100 * (best["handle_after"] / best["handle_before"] - 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_cost", description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000, help="messages to decode per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved before/after rounds; the best counts")
    p.add_argument("--symbols", default="ESZ6:CME,NQZ6:CME,CLF7:NYMEX,GCG7:COMEX", help="symbol:exchange,...")
    args = p.parse_args(argv)
    pairs = [tuple(x.split(":", 1)) for x in args.symbols.split(",") if x]
    print(json.dumps(measure(capture(pairs, args.frames), args.rounds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
