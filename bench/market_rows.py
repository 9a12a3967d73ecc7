"""Rows as the collector stores them from the simulator's market, without sockets: the simulator's own
tapes (simulator.market, the same events its live feeds send) encoded as its frames, decoded by the
collector's decoders (collector_ecs.parsing), and written through the collector's writer. What the
archive benchmark measures and the archive tests check is therefore shaped like recorded data (trade,
quote and book mix, tick-grid prices, exchange-time spacing), not random numbers.

A subscription starts with a book snapshot (SNAPSHOT_IMAGE, every level of both sides), as the
gateway sends one; `received_at` is the exchange time plus the latency of a collector that reads
every millisecond (rows of one read share the stamp, as Ingest gives them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from collector_ecs import parsing
from collector_ecs.writer import write_batch
from rdc_common.products import infer_exchange
from simulator.market import Market, RateTimeline, book_at, resolve_contract

TABLES = ("tick_data", "quote_data", "level2_data")
UTC = dt.UTC
_MS = dt.timedelta(milliseconds=1)
DEFAULT_RATE = 200  # messages a second per symbol: what `make run` asks of the simulator


def _frames(buf: bytes) -> Iterable[bytes]:
    """The R|Protocol messages (length prefix included) of a run of the simulator's WebSocket frames."""
    pos, end = 0, len(buf)
    while pos < end:
        b1 = buf[pos + 1]
        if b1 < 126:
            length, pos = b1, pos + 2
        elif b1 == 126:
            length, pos = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
        else:
            length, pos = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
        yield buf[pos:pos + length]
        pos += length


def _received(ts: dt.datetime) -> dt.datetime:
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000) + 2 * _MS


def market_rows(symbols: Iterable[str], start: dt.datetime, seconds: int, *, rate: int = DEFAULT_RATE,
                seed: int = 1) -> dict[str, list[tuple]]:
    """Rows per table (laid out as collector_ecs.parsing.COLUMNS) for `seconds` seconds of each symbol
    from `start` (closed seconds have none, as in the market)."""
    market = Market(seed, RateTimeline(rate))
    first = int(start.timestamp())
    out: dict[str, list[tuple]] = {t: [] for t in TABLES}
    ticks, quotes, books = out["tick_data"], out["quote_data"], out["level2_data"]
    for symbol in symbols:
        contract = resolve_contract(symbol, infer_exchange(symbol), first)
        inst = market.instrument(contract)
        qb = parsing.QuoteBook()
        state = book_at(market, inst, first, 0)
        snap_ts = parsing.exchange_time(*state.as_of)
        bids, asks = sorted(state.bids.items(), reverse=True), sorted(state.asks.items())
        books.append((snap_ts, inst.symbol, inst.exchange, "SNAPSHOT_IMAGE",
                      tuple(inst.price(p) for p, _ in bids), tuple(s for _, s in bids), (),
                      tuple(inst.price(p) for p, _ in asks), tuple(s for _, s in asks), (), _received(snap_ts)))
        for second in range(first, first + seconds):
            tape = market.tape(inst, second, cache=False).complete()
            if not len(tape):
                continue
            for frame in _frames(tape.frames(7, 0, len(tape))):
                template, payload = parsing.split_frame(frame)
                if template == parsing.T_LAST_TRADE:
                    row = parsing.decode_trade(payload, None)
                    if row is not None:
                        ticks.append(row[:7] + (_received(row[0]),) + row[8:])
                elif template == parsing.T_BBO:
                    row = qb.decode(payload, None)
                    quotes.append(row[:9] + (_received(row[0]),))
                elif template == parsing.T_ORDER_BOOK:
                    row = parsing.decode_book(payload, None)
                    books.append(row[:10] + (_received(row[0]),))
    for rows in out.values():
        rows.sort(key=lambda r: r[0])
    return out


async def write_rows(conn, rows: dict[str, list[tuple]], batch_size: int = 20_000) -> int:
    """Through the collector's writer (COPY, batch ids, counters), in batches as it cuts them."""
    n = 0
    for table, table_rows in rows.items():
        for i in range(0, len(table_rows), batch_size):
            await write_batch(conn, table, table_rows[i:i + batch_size])
            n += len(table_rows[i:i + batch_size])
    return n
