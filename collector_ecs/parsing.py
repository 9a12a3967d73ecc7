"""Pure decoding of Rithmic market-data frames into database rows (bytes in, tuples out).

This is the collector's hot path: it replaces async_rithmic's callbacks, which turn each
message into a dict with MessageToDict. No I/O here; the unit tests drive it directly.
"""

from __future__ import annotations

import datetime as dt

from async_rithmic import protocol_buffers as pb

# timestamp_ns and gateway_at came later (sql/005): new columns go last, so a row that predates
# them (a spooled batch) is a prefix of today's layout and is written with the columns it has.
TICK_COLUMNS = ("timestamp", "symbol", "exchange", "price", "size", "aggressor",
                "cumulative_volume", "received_at", "backfilled", "timestamp_ns", "gateway_at")
QUOTE_COLUMNS = ("timestamp", "symbol", "exchange", "bid_price", "bid_size", "bid_orders",
                 "ask_price", "ask_size", "ask_orders", "received_at")
LEVEL2_COLUMNS = ("timestamp", "symbol", "exchange", "update_type", "bid_price", "bid_size",
                  "bid_orders", "ask_price", "ask_size", "ask_orders", "received_at")

TICK, QUOTE, LEVEL2 = "tick_data", "quote_data", "level2_data"
COLUMNS = {TICK: TICK_COLUMNS, QUOTE: QUOTE_COLUMNS, LEVEL2: LEVEL2_COLUMNS}

T_LAST_TRADE, T_BBO, T_ORDER_BOOK = 150, 151, 156
T_MARKET_DATA_RESPONSE = 101
MARKET_DATA_TEMPLATES = frozenset((T_LAST_TRADE, T_BBO, T_ORDER_BOOK))

_Base = pb.base_pb2.Base
_LastTrade = pb.last_trade_pb2.LastTrade
_BBO = pb.best_bid_offer_pb2.BestBidOffer
_OrderBook = pb.order_book_pb2.OrderBook

_AGGRESSOR = (None, "BUY", "SELL")
_UPDATE_TYPE = {v.number: v.name for v in _OrderBook.DESCRIPTOR.enum_types_by_name["UpdateType"].values}
_LT_TRADE_BIT, _LT_VOLUME_BIT = _LastTrade.PresenceBits.LAST_TRADE, _LastTrade.PresenceBits.VOLUME
_BBO_BID, _BBO_ASK = _BBO.PresenceBits.BID, _BBO.PresenceBits.ASK

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_fromtimestamp = dt.datetime.fromtimestamp


class FrameError(ValueError):
    """A frame that is not a well-formed Rithmic message."""


# Whole seconds already converted, as (year, month, day, hour, minute, second): the hot path
# builds each timestamp with the datetime constructor from these, which costs a quarter of
# datetime.replace (about 0.25 against 0.9 us here).
_SECONDS: dict[int, tuple] = {}
_NS_PER_S = 1_000_000_000
_datetime = dt.datetime


def _second(ssboe: int) -> tuple:
    if len(_SECONDS) >= 4096:  # distinct seconds seen; live data needs a handful at a time
        _SECONDS.clear()
    t = _fromtimestamp(ssboe, UTC)
    fields = _SECONDS[ssboe] = (t.year, t.month, t.day, t.hour, t.minute, t.second)
    return fields


def exchange_time(ssboe: int, usecs: int) -> dt.datetime:
    """A Rithmic (seconds since the Unix epoch, microseconds) pair as a UTC datetime."""
    return _datetime(*(_SECONDS.get(ssboe) or _second(ssboe)), usecs, UTC)


def split_frame(frame: bytes) -> tuple[int, bytes]:
    """(template id, protobuf payload) of a length-prefixed frame; FrameError when malformed."""
    payload = frame[4:]
    if len(frame) < 4 or int.from_bytes(frame[:4], "big") != len(payload):
        raise FrameError(f"frame of {len(frame)} bytes does not match its length prefix")
    try:
        return _Base.FromString(payload).template_id, payload
    except Exception as exc:  # protobuf raises DecodeError; any parse failure is the frame's fault
        raise FrameError(f"undecodable frame: {exc}") from None


def decode_trade(payload: bytes, received_at: dt.datetime) -> tuple | None:
    """A tick_data row, or None for a LastTrade that reports no new trade (a snapshot, or volume only).

    Three clocks travel on a LastTrade. ``source_ssboe/usecs/nsecs`` is the exchange's time of the
    trade (``source_nsecs`` the nanoseconds within its second, as Rithmic's other clients read
    it); ``ssboe/usecs`` is when Rithmic's ticker plant stamped it; ``jop_*`` is a third we do not
    keep. The row's ``timestamp`` is the exchange's time, truncated to the microsecond PostgreSQL
    keeps, ``timestamp_ns`` the same instant in epoch nanoseconds (None when the message carries
    no nanoseconds), and ``gateway_at`` the ticker plant's stamp. A message without a source time
    (``source_ssboe`` 0: no trade happens in 1970) is stamped with the gateway's time, the best
    it carries.
    """
    m = _LastTrade.FromString(payload)
    bits = m.presence_bits
    if m.is_snapshot or not (bits & _LT_TRADE_BIT):
        return None
    ss = m.source_ssboe
    if ss:
        fields = _SECONDS.get(ss) or _second(ss)
        ns = m.source_nsecs
        if 0 < ns < _NS_PER_S:
            ts = _datetime(*fields, ns // 1000, UTC)
            ns += ss * _NS_PER_S
        else:  # microseconds only
            ts, ns = _datetime(*fields, m.source_usecs, UTC), None
        gs = m.ssboe
        if gs == ss:
            gateway = _datetime(*fields, m.usecs, UTC)
        elif gs:  # stamped in the next second
            gateway = _datetime(*(_SECONDS.get(gs) or _second(gs)), m.usecs, UTC)
        else:
            gateway = None
    else:
        ts = gateway = _datetime(*(_SECONDS.get(m.ssboe) or _second(m.ssboe)), m.usecs, UTC)
        ns = None
    aggressor = m.aggressor
    return (
        ts, m.symbol, m.exchange,
        m.trade_price, m.trade_size, _AGGRESSOR[aggressor] if aggressor < 3 else None,
        m.volume if bits & _LT_VOLUME_BIT else None, received_at, False, ns, gateway,
    )


class QuoteBook:
    """Last known best bid and offer per symbol.

    Rithmic sends only the side that changed (presence bits); each stored quote row is
    the full BBO at that instant, so a reader never has to carry state forward.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, list] = {}

    def decode(self, payload: bytes, received_at: dt.datetime) -> tuple:
        m = _BBO.FromString(payload)
        symbol = m.symbol
        side = self._last.get(symbol)
        if side is None:
            side = self._last[symbol] = [None, None, None, None, None, None]
        bits = m.presence_bits
        if bits & _BBO_BID:
            side[0], side[1], side[2] = m.bid_price, m.bid_size, m.bid_orders
        elif m.clear_bits & _BBO_BID:
            side[0] = side[1] = side[2] = None
        if bits & _BBO_ASK:
            side[3], side[4], side[5] = m.ask_price, m.ask_size, m.ask_orders
        elif m.clear_bits & _BBO_ASK:
            side[3] = side[4] = side[5] = None
        return (exchange_time(m.ssboe, m.usecs), symbol, m.exchange,
                side[0], side[1], side[2], side[3], side[4], side[5], received_at)

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)

    def bbo(self, symbol: str) -> list | None:
        """[bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders] last seen, or None."""
        return self._last.get(symbol)


def decode_book(payload: bytes, received_at: dt.datetime) -> tuple:
    """A level2_data row; the price/size/order arrays are tuples.

    Tuples, not lists: a row of tuples of numbers is untracked by Python's cyclic garbage
    collector after one pass, while lists would be rescanned at every collection for as long
    as the row waits in the writer's buffer (that cost the hot path more than decoding did).
    """
    m = _OrderBook.FromString(payload)
    bp, bs, bo, ap, as_, ao = m.bid_price, m.bid_size, m.bid_orders, m.ask_price, m.ask_size, m.ask_orders
    return (
        exchange_time(m.ssboe, m.usecs), m.symbol, m.exchange,
        _UPDATE_TYPE.get(m.update_type, "UPDATETYPE_UNSPECIFIED"),
        tuple(bp) if bp else (), tuple(bs) if bs else (), tuple(bo) if bo else (),
        tuple(ap) if ap else (), tuple(as_) if as_ else (), tuple(ao) if ao else (), received_at,
    )


def decode_market_data_response(payload: bytes) -> tuple[list[str], list[str]]:
    """(user_msg, rp_code) of a ResponseMarketDataUpdate: how a subscription request ended."""
    m = pb.response_market_data_update_pb2.ResponseMarketDataUpdate.FromString(payload)
    return list(m.user_msg), list(m.rp_code)


def trades_from_history(ticks, symbol: str, exchange: str, received_at: dt.datetime) -> list[tuple]:
    """tick_data rows (marked backfilled) from async_rithmic's historical tick dicts.

    A one-trade tick bar carries the trade's size as `volume`; the side it traded on is
    whichever of bid_volume/ask_volume is set (a sell aggressor hits the bid).

    The replay's `data_bar_ssboe/usecs` is taken as the exchange's time of the trade, the same
    clock as a live trade's `timestamp`, to the microsecond. A replay carries no nanoseconds,
    no gateway stamp and no cumulative volume (ResponseTickBarReplay has no field for them), so
    those are None: never invented.
    """
    rows = []
    for t in ticks:
        ssboe = t["data_bar_ssboe"][0]
        usecs = t["data_bar_usecs"][0] if t.get("data_bar_usecs") else 0
        size = int(t.get("volume", 0))
        if int(t.get("ask_volume", 0)) > 0:
            aggressor = "BUY"
        elif int(t.get("bid_volume", 0)) > 0:
            aggressor = "SELL"
        else:
            aggressor = None
        rows.append((exchange_time(int(ssboe), int(usecs)), symbol, exchange, float(t["close_price"]),
                     size, aggressor, None, received_at, True, None, None))
    return rows
