"""Rows built the way a user of stock async_rithmic would build them: from the dicts its on_tick
callback delivers (MessageToDict output) and the OrderBook messages its on_order_book delivers.

The tuples are laid out exactly as collector_ecs.parsing lays them out, with the same rules
(presence bits, quote state carried per symbol), so the writer behind them is the same and the
only difference between this path and the collector is how a frame becomes a row. Pure.
"""

from __future__ import annotations

import datetime as dt

from async_rithmic import protocol_buffers as pb

from collector_ecs.parsing import _UPDATE_TYPE  # the enum names the collector stores

_AGGRESSOR = (None, "BUY", "SELL")
# Presence/clear bits, from the protobuf classes as collector_ecs.parsing reads them.
_LastTrade, _BBO = pb.last_trade_pb2.LastTrade, pb.best_bid_offer_pb2.BestBidOffer
_LAST_TRADE_BIT, _VOLUME_BIT = _LastTrade.PresenceBits.LAST_TRADE, _LastTrade.PresenceBits.VOLUME
_BID_BIT, _ASK_BIT = _BBO.PresenceBits.BID, _BBO.PresenceBits.ASK


def trade_row(d: dict, received_at: dt.datetime) -> tuple | None:
    """A tick_data row from an on_tick LAST_TRADE dict; None when it reports no new trade.

    The library's `datetime` is ssboe/usecs, the gateway's stamp; the exchange's time is read from
    source_ssboe/usecs/nsecs when the dict has them, as the collector reads it."""
    bits = d.get("presence_bits", 0)
    if d.get("is_snapshot") or not bits & _LAST_TRADE_BIT:
        return None
    aggressor = d.get("aggressor", 0)
    volume = d.get("volume")  # uint64: MessageToDict gives it as a string
    gateway = d["datetime"]
    ts, ns = gateway, None
    if source := d.get("source_ssboe"):
        nsecs = d.get("source_nsecs", 0)
        second = dt.datetime.fromtimestamp(source, dt.UTC)
        if 0 < nsecs < 1_000_000_000:
            ts, ns = second.replace(microsecond=nsecs // 1000), source * 1_000_000_000 + nsecs
        else:
            ts = second.replace(microsecond=d.get("source_usecs", 0))
    return (ts, d["symbol"], d["exchange"], d.get("trade_price", 0.0), d.get("trade_size", 0),
            _AGGRESSOR[aggressor] if aggressor < 3 else None,
            int(volume) if bits & _VOLUME_BIT and volume is not None else None, received_at, False, ns, gateway)


class QuoteState:
    """Last best bid and offer per symbol, so every stored quote row is the full BBO."""

    def __init__(self) -> None:
        self._last: dict[str, list] = {}

    def row(self, d: dict, received_at: dt.datetime) -> tuple:
        symbol = d["symbol"]
        side = self._last.get(symbol)
        if side is None:
            side = self._last[symbol] = [None] * 6
        bits, clear = d.get("presence_bits", 0), d.get("clear_bits", 0)
        if bits & _BID_BIT:
            side[0], side[1], side[2] = d.get("bid_price", 0.0), d.get("bid_size", 0), d.get("bid_orders", 0)
        elif clear & _BID_BIT:
            side[0] = side[1] = side[2] = None
        if bits & _ASK_BIT:
            side[3], side[4], side[5] = d.get("ask_price", 0.0), d.get("ask_size", 0), d.get("ask_orders", 0)
        elif clear & _ASK_BIT:
            side[3] = side[4] = side[5] = None
        return (d["datetime"], symbol, d["exchange"], *side, received_at)


def book_row(m, received_at: dt.datetime) -> tuple:
    """A level2_data row from the OrderBook message on_order_book delivers."""
    return (dt.datetime.fromtimestamp(m.ssboe, dt.UTC).replace(microsecond=m.usecs), m.symbol, m.exchange,
            _UPDATE_TYPE.get(m.update_type, "UPDATETYPE_UNSPECIFIED"),
            tuple(m.bid_price), tuple(m.bid_size), tuple(m.bid_orders),
            tuple(m.ask_price), tuple(m.ask_size), tuple(m.ask_orders), received_at)
