"""R|Protocol on the wire: WebSocket server frames around length-prefixed protobuf messages.

The three market-data messages (LastTrade, BestBidOffer, OrderBook) and tick-replay rows are
encoded by hand because they are the hot path; everything else goes through the protobuf
classes async_rithmic ships. ``tests/unit/test_simulator_market.py`` checks that both parse
the same.
"""

from __future__ import annotations

import struct

from async_rithmic.plants.base import TEMPLATES_MAP
from async_rithmic.protocol_buffers.base_pb2 import Base

# Template ids of the messages the simulator itself builds, from the client's own table so both
# sides agree on the numbering.
TEMPLATE_BY_NAME: dict[str, int] = {cls.__name__: tid for tid, cls in TEMPLATES_MAP.items()}
CLASS_BY_TEMPLATE = TEMPLATES_MAP

_pack_double = struct.Struct("<d").pack

# --- protobuf primitives -------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if value < 16384:
        return _VARINT_TABLE[value]
    # Every 14 bits are two bytes with the continuation bit set: the microseconds of each event
    # (3 bytes) and a trade's nanoseconds (4 or 5) are two or three table lookups.
    if value < 268435456:
        return _LOW14[value & 0x3FFF] + _VARINT_TABLE[value >> 14]
    if value < 4398046511104:
        return _LOW14[value & 0x3FFF] + _LOW14[(value >> 14) & 0x3FFF] + _VARINT_TABLE[value >> 28]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Sizes and counts are small: a table lookup beats building bytes for each.
_VARINT_TABLE = [bytes([v]) if v < 0x80 else bytes([(v & 0x7F) | 0x80, v >> 7]) for v in range(16384)]
_LOW14 = [bytes(((v & 0x7F) | 0x80, (v >> 7) | 0x80)) for v in range(16384)]


def tag(field_number: int, wire_type: int) -> bytes:
    return varint((field_number << 3) | wire_type)


def field_varint(field_number: int, value: int) -> bytes:
    return tag(field_number, 0) + varint(value)


def field_bytes(field_number: int, value: bytes) -> bytes:
    return tag(field_number, 2) + varint(len(value)) + value


def field_double(field_number: int, value: float) -> bytes:
    return tag(field_number, 1) + _pack_double(value)


# --- WebSocket framing ---------------------------------------------------------------------------

_FRAME_HEADS: list[bytes] = []
for _n in range(4096):
    _length = _n + 4  # the R|Protocol 4-byte length prefix is part of the WebSocket payload
    _head = b"\x82" + (bytes([_length]) if _length < 126 else b"\x7e" + _length.to_bytes(2, "big"))
    _FRAME_HEADS.append(_head + _n.to_bytes(4, "big"))


def frame(message: bytes) -> bytes:
    """One binary WebSocket frame (server to client, unmasked) carrying one R|Protocol message."""
    n = len(message)
    if n < 4096:
        return _FRAME_HEADS[n] + message
    length = n + 4
    head = b"\x82\x7e" + length.to_bytes(2, "big") if length < 65536 else b"\x82\x7f" + length.to_bytes(8, "big")
    return head + n.to_bytes(4, "big") + message


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A server control or data frame with an arbitrary opcode (close, pong...)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def encode(message) -> bytes:
    """A protobuf message object as a ready-to-write frame (the cold path)."""
    return frame(message.SerializeToString())


def build(name: str, **fields):
    """A message of the class ``name`` with ``template_id`` set and ``fields`` assigned."""
    tid = TEMPLATE_BY_NAME[name]
    msg = CLASS_BY_TEMPLATE[tid]()
    msg.template_id = tid
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            getattr(msg, key).extend(value)
        else:
            setattr(msg, key, value)
    return msg


def parse(payload: bytes):
    """A client message (length prefix + protobuf) as its protobuf class; ValueError when unusable."""
    if len(payload) < 4:
        raise ValueError("message shorter than its 4-byte length prefix")
    declared = int.from_bytes(payload[:4], "big")
    body = payload[4:]
    if declared != len(body):
        raise ValueError(f"length prefix says {declared} bytes, message has {len(body)}")
    base = Base()
    base.ParseFromString(body)
    cls = CLASS_BY_TEMPLATE.get(base.template_id)
    if cls is None:
        return base.template_id, None
    msg = cls()
    msg.ParseFromString(body)
    return base.template_id, msg


# --- hot market-data encoders --------------------------------------------------------------------

# Field numbers, from the .proto files shipped with async_rithmic.
F_TEMPLATE_ID = 154467
F_SYMBOL = 110100
F_EXCHANGE = 110101
F_PRESENCE_BITS = 149138
F_SSBOE = 150100
F_USECS = 150101
F_SOURCE_SSBOE = 150400
F_SOURCE_USECS = 150401
F_SOURCE_NSECS = 150404
F_TRADE_PRICE = 100006
F_TRADE_SIZE = 100178
F_AGGRESSOR = 112003
F_VOLUME = 100032
F_BID_PRICE = 100022
F_BID_SIZE = 100030
F_BID_ORDERS = 154403
F_ASK_PRICE = 100025
F_ASK_SIZE = 100031
F_ASK_ORDERS = 154404
F_UPDATE_TYPE = 157608
F_BOOK_BID_PRICE = 154282
F_BOOK_BID_SIZE = 154283
F_BOOK_BID_ORDERS = 154401
F_BOOK_ASK_PRICE = 154284
F_BOOK_ASK_SIZE = 154285
F_BOOK_ASK_ORDERS = 154402
# ResponseTickBarReplay
F_USER_MSG = 132760
F_RQ_HANDLER_RP_CODE = 132764
F_RP_CODE = 132766
F_BAR_TYPE = 119200
F_BAR_SUB_TYPE = 119208
F_TYPE_SPECIFIER = 148162
F_NUM_TRADES = 119204
F_BAR_VOLUME = 119205
F_BAR_BID_VOLUME = 119213
F_BAR_ASK_VOLUME = 119214
F_OPEN_PRICE = 100019
F_CLOSE_PRICE = 100021
F_HIGH_PRICE = 100012
F_LOW_PRICE = 100013
F_DATA_BAR_SSBOE = 119202
F_DATA_BAR_USECS = 119203

LAST_TRADE_PRESENCE = 1 | 8  # LAST_TRADE | VOLUME
BBO_PRESENCE = 1 | 2  # BID | ASK

T_PRICE = tag(F_TRADE_PRICE, 1)
T_TRADE_SIZE = tag(F_TRADE_SIZE, 0)
T_AGGRESSOR = tag(F_AGGRESSOR, 0)
T_VOLUME = tag(F_VOLUME, 0)
T_USECS = tag(F_USECS, 0)
T_SOURCE_USECS = tag(F_SOURCE_USECS, 0)
T_SOURCE_NSECS = tag(F_SOURCE_NSECS, 0)
T_BID_PRICE = tag(F_BID_PRICE, 1)
T_BID_SIZE = tag(F_BID_SIZE, 0)
T_BID_ORDERS = tag(F_BID_ORDERS, 0)
T_ASK_PRICE = tag(F_ASK_PRICE, 1)
T_ASK_SIZE = tag(F_ASK_SIZE, 0)
T_ASK_ORDERS = tag(F_ASK_ORDERS, 0)
T_BOOK_BID_PRICE = tag(F_BOOK_BID_PRICE, 2)
T_BOOK_BID_SIZE = tag(F_BOOK_BID_SIZE, 2)
T_BOOK_BID_ORDERS = tag(F_BOOK_BID_ORDERS, 2)
T_BOOK_ASK_PRICE = tag(F_BOOK_ASK_PRICE, 2)
T_BOOK_ASK_SIZE = tag(F_BOOK_ASK_SIZE, 2)
T_BOOK_ASK_ORDERS = tag(F_BOOK_ASK_ORDERS, 2)
T_UPDATE_TYPE = tag(F_UPDATE_TYPE, 0)
AGGRESSOR_FIELD = {1: T_AGGRESSOR + b"\x01", 2: T_AGGRESSOR + b"\x02"}
BOOK_PRESENCE_FIELD = {p: field_varint(F_PRESENCE_BITS, p) for p in (1, 2, 3)}
UPDATE_TYPE_FIELD = {u: T_UPDATE_TYPE + varint(u) for u in range(1, 8)}


# Whole one-level fields (tag, length, value) of a book side's size or order count, and a BBO side's
# order count, for the small values nearly every message carries: one lookup instead of three parts.
_SMALL = 2048
_BOOK_ONE_SIZE = {side: [t + _VARINT_TABLE[len(_VARINT_TABLE[v])] + _VARINT_TABLE[v] for v in range(_SMALL)]
                  for side, t in ((1, T_BOOK_BID_SIZE), (2, T_BOOK_ASK_SIZE))}
_BOOK_ONE_ORDERS = {side: [t + _VARINT_TABLE[len(_VARINT_TABLE[v])] + _VARINT_TABLE[v] for v in range(_SMALL)]
                    for side, t in ((1, T_BOOK_BID_ORDERS), (2, T_BOOK_ASK_ORDERS))}
_BID_ORDERS_FIELD = [T_BID_ORDERS + _VARINT_TABLE[v] for v in range(_SMALL)]
_ASK_ORDERS_FIELD = [T_ASK_ORDERS + _VARINT_TABLE[v] for v in range(_SMALL)]


def _one_level(table: dict, tags: dict, side: int, value: int) -> bytes:
    if value < _SMALL:
        return table[side][value]
    v = varint(value)
    return tags[side] + _VARINT_TABLE[len(v)] + v


def ssboe_field(second: int) -> bytes:
    return field_varint(F_SSBOE, second)


def source_ssboe_field(second: int) -> bytes:
    return field_varint(F_SOURCE_SSBOE, second)


class HotEncoder:
    """Hand-encodes one instrument's LastTrade, BestBidOffer and OrderBook messages as frames.

    Prices are tick counts; each price field is packed once per instrument. ``tfield`` is the
    encoded ssboe + usecs pair of the event, shared by its BBO and OrderBook messages; a LastTrade
    gets its own, the exchange's source_ssboe/usecs/nsecs and the gateway's ssboe/usecs.
    """

    def __init__(self, symbol: str, exchange: str, price_of):
        ident = field_bytes(F_SYMBOL, symbol.encode()) + field_bytes(F_EXCHANGE, exchange.encode())
        self._lt_head = field_varint(F_TEMPLATE_ID, 150) + ident + field_varint(F_PRESENCE_BITS, LAST_TRADE_PRESENCE)
        self._bbo_head = field_varint(F_TEMPLATE_ID, 151) + ident + field_varint(F_PRESENCE_BITS, BBO_PRESENCE)
        head = field_varint(F_TEMPLATE_ID, 156) + ident
        self._book_head = head
        # one-level updates on one side, the common case: everything before the price is constant
        self._solo_one = {
            1: head + BOOK_PRESENCE_FIELD[1] + UPDATE_TYPE_FIELD[7] + T_BOOK_BID_PRICE + b"\x08",
            2: head + BOOK_PRESENCE_FIELD[2] + UPDATE_TYPE_FIELD[7] + T_BOOK_ASK_PRICE + b"\x08",
        }
        self._solo_two = {
            1: head + BOOK_PRESENCE_FIELD[1] + UPDATE_TYPE_FIELD[7] + T_BOOK_BID_PRICE + b"\x10",
            2: head + BOOK_PRESENCE_FIELD[2] + UPDATE_TYPE_FIELD[7] + T_BOOK_ASK_PRICE + b"\x10",
        }
        self._size_tag = {1: T_BOOK_BID_SIZE, 2: T_BOOK_ASK_SIZE}
        self._orders_tag = {1: T_BOOK_BID_ORDERS, 2: T_BOOK_ASK_ORDERS}
        self._price_of = price_of
        self._packed: dict[int, bytes] = {}
        self._lt_price: dict[int, bytes] = {}
        self._bid_price: dict[int, bytes] = {}
        self._ask_price: dict[int, bytes] = {}

    def packed(self, ticks: int) -> bytes:
        p = self._packed.get(ticks)
        if p is None:
            p = self._packed[ticks] = _pack_double(self._price_of(ticks))
        return p

    def _field(self, cache: dict, tag_: bytes, ticks: int) -> bytes:
        f = cache[ticks] = tag_ + self.packed(ticks)
        return f

    def last_trade(self, tfield: bytes, trade: tuple) -> bytes:
        """``trade`` = (px, size, aggressor, volume); ``tfield`` its encoded source and gateway times."""
        px = trade[0]
        pf = self._lt_price.get(px) or self._field(self._lt_price, T_PRICE, px)
        body = b"".join(
            (
                self._lt_head,
                pf,
                T_TRADE_SIZE,
                varint(trade[1]),
                AGGRESSOR_FIELD[trade[2]],
                T_VOLUME,
                varint(trade[3]),
                tfield,
            )
        )
        return _FRAME_HEADS[len(body)] + body

    def bbo(self, tfield: bytes, quote: tuple) -> bytes:
        """``quote`` = (bid, bid_size, ask, ask_size, bid_orders, ask_orders)."""
        bid, ask = quote[0], quote[2]
        body = b"".join(
            (
                self._bbo_head,
                self._bid_price.get(bid) or self._field(self._bid_price, T_BID_PRICE, bid),
                T_BID_SIZE,
                varint(quote[1]),
                _BID_ORDERS_FIELD[quote[4]] if quote[4] < _SMALL else T_BID_ORDERS + varint(quote[4]),
                self._ask_price.get(ask) or self._field(self._ask_price, T_ASK_PRICE, ask),
                T_ASK_SIZE,
                varint(quote[3]),
                _ASK_ORDERS_FIELD[quote[5]] if quote[5] < _SMALL else T_ASK_ORDERS + varint(quote[5]),
                tfield,
            )
        )
        return _FRAME_HEADS[len(body)] + body

    def book(self, tfield: bytes, update_type: int, changes) -> bytes:
        """``changes``: (side, ticks, size, reason, orders) tuples, side 1 = bid, 2 = ask; size and
        orders 0 delete the level."""
        packed = self._packed
        if update_type == 7 and len(changes) <= 2:
            c0 = changes[0]
            side = c0[0]
            if len(changes) == 1:
                size, count = c0[2], c0[4]
                body = b"".join(
                    (
                        self._solo_one[side],
                        packed.get(c0[1]) or self.packed(c0[1]),
                        _BOOK_ONE_SIZE[side][size] if size < _SMALL else
                        _one_level(_BOOK_ONE_SIZE, self._size_tag, side, size),
                        _BOOK_ONE_ORDERS[side][count] if count < _SMALL else
                        _one_level(_BOOK_ONE_ORDERS, self._orders_tag, side, count),
                        tfield,
                    )
                )
                return _FRAME_HEADS[len(body)] + body
            c1 = changes[1]
            if c1[0] == side:
                s = varint(c0[2]) + varint(c1[2])
                n = varint(c0[4]) + varint(c1[4])
                body = b"".join(
                    (
                        self._solo_two[side],
                        packed.get(c0[1]) or self.packed(c0[1]),
                        packed.get(c1[1]) or self.packed(c1[1]),
                        self._size_tag[side],
                        _VARINT_TABLE[len(s)],
                        s,
                        self._orders_tag[side],
                        _VARINT_TABLE[len(n)],
                        n,
                        tfield,
                    )
                )
                return _FRAME_HEADS[len(body)] + body
        bp: list[bytes] = []
        bs: list[bytes] = []
        bo: list[bytes] = []
        ap: list[bytes] = []
        as_: list[bytes] = []
        ao: list[bytes] = []
        for change in changes:
            side, px, size, orders = change[0], change[1], change[2], change[4]
            if side == 1:
                bp.append(packed.get(px) or self.packed(px))
                bs.append(varint(size))
                bo.append(varint(orders))
            else:
                ap.append(packed.get(px) or self.packed(px))
                as_.append(varint(size))
                ao.append(varint(orders))
        parts = [
            self._book_head,
            BOOK_PRESENCE_FIELD[(1 if bp else 0) | (2 if ap else 0)],
            UPDATE_TYPE_FIELD[update_type],
        ]
        if bp:
            sizes, counts = b"".join(bs), b"".join(bo)
            parts += (T_BOOK_BID_PRICE, varint(8 * len(bp)), *bp, T_BOOK_BID_SIZE, varint(len(sizes)), sizes,
                      T_BOOK_BID_ORDERS, varint(len(counts)), counts)
        if ap:
            sizes, counts = b"".join(as_), b"".join(ao)
            parts += (T_BOOK_ASK_PRICE, varint(8 * len(ap)), *ap, T_BOOK_ASK_SIZE, varint(len(sizes)), sizes,
                      T_BOOK_ASK_ORDERS, varint(len(counts)), counts)
        parts.append(tfield)
        return frame(b"".join(parts))


def time_field(sfield: bytes, usecs: int) -> bytes:
    """ssboe (pre-encoded per second) + usecs of one event."""
    return sfield + T_USECS + varint(usecs)


class TickReplayEncoder:
    """Hand-encodes ResponseTickBarReplay rows: one trade per message, as the history plant sends them."""

    def __init__(self, symbol: str, exchange: str, user_msg: str, price_of):
        self._head = b"".join(
            (
                field_varint(F_TEMPLATE_ID, 207),
                field_bytes(F_USER_MSG, user_msg.encode()),
                field_bytes(F_RQ_HANDLER_RP_CODE, b"0"),
                field_bytes(F_SYMBOL, symbol.encode()),
                field_bytes(F_EXCHANGE, exchange.encode()),
                field_varint(F_BAR_TYPE, 1),  # TICK_BAR
                field_varint(F_BAR_SUB_TYPE, 1),  # REGULAR
                field_bytes(F_TYPE_SPECIFIER, b"1"),
                field_varint(F_NUM_TRADES, 1),
            )
        )
        self._price_of = price_of
        self._prices: dict[int, bytes] = {}
        self._t_bid_volume = tag(F_BAR_BID_VOLUME, 0)
        self._t_ask_volume = tag(F_BAR_ASK_VOLUME, 0)
        self._t_volume = tag(F_BAR_VOLUME, 0)
        self._t_ssboe = tag(F_DATA_BAR_SSBOE, 2)
        self._t_usecs = tag(F_DATA_BAR_USECS, 2)

    def _price_fields(self, px: int) -> bytes:
        fields = self._prices.get(px)
        if fields is None:
            d = _pack_double(self._price_of(px))
            fields = b"".join(tag(f, 1) + d for f in (F_OPEN_PRICE, F_CLOSE_PRICE, F_HIGH_PRICE, F_LOW_PRICE))
            self._prices[px] = fields
        return fields

    def row(self, second: int, usecs: int, px: int, size: int, aggressor: int) -> bytes:
        # A SELL aggressor hits the bid: its volume is bid volume, as Rithmic reports it.
        side_volume = (self._t_bid_volume if aggressor == 2 else self._t_ask_volume) + varint(size)
        s = varint(second)
        u = varint(usecs)
        body = b"".join(
            (
                self._head,
                self._t_volume,
                varint(size),
                side_volume,
                self._price_fields(px),
                self._t_ssboe,
                varint(len(s)),
                s,
                self._t_usecs,
                varint(len(u)),
                u,
            )
        )
        return frame(body)
