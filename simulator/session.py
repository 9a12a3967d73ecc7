"""One client connection: the R|Protocol session state machine and every plant's requests.

A connection starts unauthenticated (system info, login and heartbeats only), then serves the
plant its RequestLogin named: ticker, history, order, PnL or repository.
"""

from __future__ import annotations

import asyncio
import logging
import time

from google.protobuf.message import DecodeError

from rdc_common.calendar import expiry_instant
from rdc_common.products import EXCHANGES, SymbolError
from simulator import history, reference, wire
from simulator.feed import Feed
from simulator.feed import position as market_position
from simulator.market import resolve_contract
from simulator.mbo import PriceOrders, sequence_number

log = logging.getLogger("simulator.session")

# rp_code values, as the gateway uses them
OK = "0"
BAD_REQUEST = "3"
NOT_FOUND = "5"
NO_DATA = "7"
PERMISSION_DENIED = "13"

TICKER, ORDER, HISTORY, PNL, REPOSITORY = 1, 2, 3, 4, 5
PLANT_NAMES = {TICKER: "ticker", ORDER: "order", HISTORY: "history", PNL: "pnl", REPOSITORY: "repository"}

# Requests each plant answers with an empty, well-formed result (what async_rithmic sends on
# connect or may ask later). Order entry is refused: the simulator is not a matching engine.
EMPTY_ANSWERS = {
    ORDER: {302, 304, 306, 308, 310, 318, 320, 324, 336, 338, 340, 3506, 3512},
    PNL: {400, 402},
    REPOSITORY: {500, 502},
}
ORDER_ENTRY = {312, 314, 316, 330, 332, 334, 346, 3504}


class Session:
    """State and request handlers of one WebSocket connection."""

    def __init__(self, sim, conn):
        self.sim = sim
        self.conn = conn
        self.user: str | None = None
        self.plant: int | None = None
        self.last_heard = time.monotonic()
        self.feed: Feed | None = None
        self._feed_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    # lifecycle, driven by the server
    def start(self) -> None:
        self._spawn(self._watchdog(), "watchdog")

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.feed is not None:
            self.feed.clear()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"session-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session task %s failed", task.get_name(), exc_info=task.exception())
            self.conn.abort()

    async def _watchdog(self) -> None:
        """Drop the session once it has been silent for longer than its heartbeat interval."""
        interval = self.sim.config.heartbeat_interval
        while True:
            await asyncio.sleep(min(1.0, interval / 4))
            silent = time.monotonic() - self.last_heard
            if silent > interval:
                log.info(
                    "dropping silent session",
                    extra={"user": self.user, "plant": PLANT_NAMES.get(self.plant), "silent_s": round(silent, 1)},
                )
                self.conn.abort()
                return

    # messages
    def send(self, msg) -> bool:
        return self.conn.write(wire.encode(msg))

    def reply(self, request, name: str, rp_code: list[str] | None = None, **fields) -> None:
        """Send ``name`` echoing the request's user_msg; rp_code defaults to ['0']."""
        self.send(wire.build(name, user_msg=list(request.user_msg), rp_code=rp_code or [OK], **fields))

    def reject(self, request, code: str, text: str) -> None:
        self.reply(request, "Reject", rp_code=[code, text])

    def on_message(self, payload: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            template_id, request = wire.parse(payload)
        except (ValueError, DecodeError) as exc:  # a malformed frame is the client's error, not ours
            log.info("unparsable message: %s", exc)
            self.send(wire.build("Reject", rp_code=[BAD_REQUEST, f"malformed message: {exc}"[:200]]))
            return
        if request is None:
            self.send(wire.build("Reject", rp_code=[BAD_REQUEST, f"unknown template {template_id}"]))
            return
        if template_id == 16:
            self.reply(
                request,
                "ResponseRithmicSystemInfo",
                system_name=list(self.sim.config.systems),
                has_aggregated_quotes=[False] * len(self.sim.config.systems),
            )
        elif template_id == 18:
            now = self.sim.clock.now()
            self.reply(request, "ResponseHeartbeat", ssboe=int(now), usecs=int((now % 1) * 1_000_000))
        elif template_id == 10:
            self._login(request)
        elif self.plant is None:
            self.reject(
                request,
                PERMISSION_DENIED,
                f"permission denied: log in (RequestLogin, template 10) before sending template {template_id}",
            )
        elif template_id == 12:
            self._logout(request)
        else:
            self._dispatch(template_id, request)

    # session
    def _login(self, req) -> None:
        cfg = self.sim.config
        if self.plant is not None:
            self.reply(req, "ResponseLogin", rp_code=[BAD_REQUEST, "already logged in on this connection"])
            return
        if req.system_name not in cfg.systems:
            self.reply(
                req,
                "ResponseLogin",
                rp_code=[BAD_REQUEST, f"unknown system name '{req.system_name}': use one of {', '.join(cfg.systems)}"],
            )
            return
        if cfg.users.get(req.user) != req.password or not req.user:
            log.info("login refused", extra={"user": req.user})
            self.reply(req, "ResponseLogin", rp_code=[PERMISSION_DENIED, "permission denied"])
            return
        if req.infra_type not in PLANT_NAMES:
            self.reply(
                req,
                "ResponseLogin",
                rp_code=[
                    BAD_REQUEST,
                    "infra_type must be TICKER_PLANT, ORDER_PLANT, HISTORY_PLANT, PNL_PLANT or REPOSITORY_PLANT",
                ],
            )
            return
        self.user = req.user
        self.plant = req.infra_type
        self.reply(
            req,
            "ResponseLogin",
            template_version="3.9",
            fcm_id="SIM",
            ib_id="SIM",
            country_code="US",
            state_code="IL",
            unique_user_id=f"sim-{req.user}",
            heartbeat_interval=cfg.heartbeat_interval,
        )
        if self.plant == TICKER:
            self.feed = Feed(self.sim, self.conn)
            self._feed_task = self._spawn(self.feed.run(), "feed")
        log.info("login", extra={"user": self.user, "plant": PLANT_NAMES[self.plant], "peer": str(self.conn.peer)})

    def _logout(self, req) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            self.feed, self._feed_task = None, None
        self.reply(req, "ResponseLogout")
        log.info("logout", extra={"user": self.user, "plant": PLANT_NAMES[self.plant]})
        self.plant = None
        self.user = None

    def _dispatch(self, template_id: int, req) -> None:
        plant = self.plant
        now = self.sim.clock.now()
        today = self.sim.clock.today()
        if template_id == 14:
            self._catalogue_reply(
                req, "ResponseReferenceData", lambda: reference.reference_fields(req.symbol, req.exchange, now)
            )
        elif plant == TICKER and template_id == 100:
            self._market_data(req)
        elif plant == TICKER and template_id == 113:
            self._catalogue_reply(
                req, "ResponseFrontMonthContract", lambda: reference.front_month_fields(req.symbol, req.exchange, now)
            )
        elif plant == TICKER and template_id == 121:
            self._catalogue_reply(
                req,
                "ResponseAuxilliaryReferenceData",
                lambda: reference.auxiliary_fields(req.symbol, req.exchange, now),
            )
        elif plant == TICKER and template_id == 109:
            rows = reference.search(req.search_text, req.exchange or None, req.product_code or None, req.pattern, today)
            if req.instrument_type not in (0, 1):  # only futures are listed
                rows = []
            self._rows(req, "ResponseSearchSymbols", rows, f"no symbols match '{req.search_text}'")
        elif plant == TICKER and template_id == 111:
            try:
                rows = reference.product_codes(req.exchange)
            except SymbolError as exc:
                self.reply(req, "ResponseProductCodes", rp_code=[NOT_FOUND, str(exc)])
                return
            self._rows(req, "ResponseProductCodes", rows, f"no products on {req.exchange}")
        elif template_id == 342 and plant in (TICKER, ORDER):
            rows = [dict(exchange=e, entitlement_flag=1) for e in EXCHANGES]
            self._rows(req, "ResponseListExchangePermissions", rows, "")
        elif plant == TICKER and template_id == 115:
            self._depth_snapshot(req)
        elif plant == TICKER and template_id == 117:
            self._depth_updates(req)
        elif plant == HISTORY and template_id == 206:
            self._spawn(self._tick_replay(req), "tick-replay")
        elif plant == HISTORY and template_id == 202:
            self._spawn(self._time_bar_replay(req), "time-bar-replay")
        elif plant == HISTORY and template_id in (200, 204):
            name = "ResponseTimeBarUpdate" if template_id == 200 else "ResponseTickBarUpdate"
            self.reply(
                req,
                name,
                rp_code=[
                    BAD_REQUEST,
                    "live bar updates are not simulated: subscribe to market data on the ticker plant, or replay bars",
                ],
            )
        elif plant == ORDER and template_id == 300:
            self.reply(
                req, "ResponseLoginInfo", fcm_id="SIM", ib_id="SIM", user=self.user, first_name=self.user, user_type=3
            )
        elif template_id in EMPTY_ANSWERS.get(plant, ()):
            name = wire.CLASS_BY_TEMPLATE[template_id + 1].__name__
            self.reply(req, name)
        elif plant == ORDER and template_id in ORDER_ENTRY:
            name = wire.CLASS_BY_TEMPLATE[template_id + 1].__name__
            self.reply(req, name, rp_code=[BAD_REQUEST, "the simulator is not a matching engine: orders are refused"])
        elif plant == REPOSITORY and template_id == 506:
            self.reply(req, "ResponseShowAgreement", rp_code=[NOT_FOUND, f"agreement '{req.agreement_id}' not found"])
        else:
            self.reject(req, BAD_REQUEST, f"template {template_id} is not served by the {PLANT_NAMES[plant]} plant")

    def _catalogue_reply(self, req, name: str, fields) -> None:
        try:
            values = fields()
        except SymbolError as exc:
            self.reply(req, name, rp_code=[NOT_FOUND, str(exc)])
            return
        self.reply(req, name, **values)

    def _rows(self, req, name: str, rows: list[dict], empty_text: str) -> None:
        """A multi-row answer: one message per row, then the closing rp_code."""
        user_msg = list(req.user_msg)
        for row in rows:
            self.send(wire.build(name, user_msg=user_msg, rq_handler_rp_code=[OK], **row))
        if rows or not empty_text:
            self.send(wire.build(name, user_msg=user_msg, rp_code=[OK]))
        else:
            self.send(wire.build(name, user_msg=user_msg, rp_code=[NO_DATA, empty_text]))

    def _instrument(self, req, expired_ok: bool = False):
        c = resolve_contract(req.symbol, req.exchange, self.sim.clock.now(), expired_ok)
        return self.sim.market.instrument(c)

    # ticker plant: market data
    def _market_data(self, req) -> None:
        if req.request not in (1, 2):
            self.reply(
                req,
                "ResponseMarketDataUpdate",
                rp_code=[BAD_REQUEST, "request must be SUBSCRIBE (1) or UNSUBSCRIBE (2)"],
            )
            return
        try:
            inst = self._instrument(req)
        except SymbolError as exc:
            self.reply(req, "ResponseMarketDataUpdate", rp_code=[NOT_FOUND, str(exc)])
            return
        bits = req.update_bits & 7
        if req.request == 1:
            if not bits:
                self.reply(
                    req,
                    "ResponseMarketDataUpdate",
                    rp_code=[BAD_REQUEST, "update_bits must include LAST_TRADE (1), BBO (2) or ORDER_BOOK (4)"],
                )
                return
            self.reply(req, "ResponseMarketDataUpdate")
            self.feed.subscribe(inst, bits)
        else:
            self.feed.unsubscribe(inst, bits or 7)
            self.reply(req, "ResponseMarketDataUpdate")
        log.info(
            "market data",
            extra={
                "symbol": inst.symbol,
                "exchange": inst.exchange,
                "request": "subscribe" if req.request == 1 else "unsubscribe",
                "bits": bits,
            },
        )

    def _depth_price(self, req, name: str):
        try:
            inst = self._instrument(req)
        except SymbolError as exc:
            self.reply(req, name, rp_code=[NOT_FOUND, str(exc)])
            return None
        px = inst.ticks_of(req.depth_price)
        if px is None:
            self.reply(
                req,
                name,
                rp_code=[
                    BAD_REQUEST,
                    f"depth_price {req.depth_price} is not on the tick grid of {inst.product.code} ({inst.tick})",
                ],
            )
            return None
        return inst, px

    def _depth_snapshot(self, req) -> None:
        found = self._depth_price(req, "ResponseDepthByOrderSnapshot")
        if found is None:
            return
        inst, px = found
        second, index = market_position(self.sim.market, inst, self.sim.clock.now())
        orders = PriceOrders(self.sim.market, inst, px)
        as_of = orders.replay(second, index)
        user_msg = list(req.user_msg)
        if not orders.orders:
            self.reply(req, "ResponseDepthByOrderSnapshot", rp_code=[NO_DATA, f"no orders at {req.depth_price}"])
            return
        self.send(
            wire.build(
                "ResponseDepthByOrderSnapshot",
                user_msg=user_msg,
                rq_handler_rp_code=[OK],
                symbol=inst.symbol,
                exchange=inst.exchange,
                sequence_number=sequence_number(*as_of),
                depth_side=1 if orders.side == 1 else 2,
                depth_price=inst.price(px),
                depth_size=[o[1] for o in orders.orders],
                depth_order_priority=[o[2] for o in orders.orders],
                exchange_order_id=[o[0] for o in orders.orders],
            )
        )
        self.send(
            wire.build(
                "ResponseDepthByOrderSnapshot",
                user_msg=user_msg,
                rp_code=[OK],
                symbol=inst.symbol,
                exchange=inst.exchange,
            )
        )

    def _depth_updates(self, req) -> None:
        if req.request not in (1, 2):
            self.reply(
                req,
                "ResponseDepthByOrderUpdates",
                rp_code=[BAD_REQUEST, "request must be SUBSCRIBE (1) or UNSUBSCRIBE (2)"],
            )
            return
        found = self._depth_price(req, "ResponseDepthByOrderUpdates")
        if found is None:
            return
        inst, px = found
        self.reply(req, "ResponseDepthByOrderUpdates")
        if req.request == 1:
            self.feed.subscribe_mbo(inst, px)
        else:
            self.feed.unsubscribe_mbo(inst, px)

    # history plant
    def _replay_error(self, req, name: str) -> tuple | None:
        """The instrument of a replay request, or None after answering with the error. An expired
        contract's history is still there (up to its expiry: it traded nothing after)."""
        try:
            return self._instrument(req, expired_ok=True)
        except SymbolError as exc:
            self.reply(req, name, rp_code=[NOT_FOUND, str(exc)])
            return None

    def _history_until(self, inst) -> float:
        """History runs up to now, or to the contract's expiry if it has stopped trading."""
        return min(self.sim.clock.now(), expiry_instant(inst.product, inst.contract.expiry))

    async def _tick_replay(self, req) -> None:
        name = "ResponseTickBarReplay"
        inst = self._replay_error(req, name)
        if inst is None:
            return
        if req.bar_type != 1 or (req.bar_type_specifier or "1") != "1":
            self.reply(
                req,
                name,
                rp_code=[BAD_REQUEST, "only 1-tick bars (bar_type TICK_BAR, bar_type_specifier '1') are simulated"],
            )
            return
        if req.time_order == 2:
            self.reply(req, name, rp_code=[BAD_REQUEST, "only FORWARDS replay is simulated"])
            return
        limit = min(history.PAGE_ROWS, req.user_max_count) if req.user_max_count > 0 else history.PAGE_ROWS
        rows = await history.tick_page(self.sim.market, inst, req.start_index, req.finish_index,
                                       self._history_until(inst), limit)
        user_msg = req.user_msg[0] if req.user_msg else ""
        enc = wire.TickReplayEncoder(inst.symbol, inst.exchange, user_msg, inst.price)
        for start in range(0, len(rows), 1000):
            await self.conn.drain()
            chunk = b"".join(enc.row(*r) for r in rows[start : start + 1000])
            if not self.conn.write(chunk):
                return
        self.reply(req, name, symbol=inst.symbol, exchange=inst.exchange)

    async def _time_bar_replay(self, req) -> None:
        name = "ResponseTimeBarReplay"
        inst = self._replay_error(req, name)
        if inst is None:
            return
        unit = {1: 1, 2: 60}.get(req.bar_type)
        if unit is None or req.bar_type_period < 1:
            self.reply(
                req,
                name,
                rp_code=[
                    BAD_REQUEST,
                    "bar_type must be SECOND_BAR or MINUTE_BAR with a period of "
                    "1 or more (daily and weekly bars are not simulated)",
                ],
            )
            return
        if req.time_order == 2:
            self.reply(req, name, rp_code=[BAD_REQUEST, "only FORWARDS replay is simulated"])
            return
        limit = min(history.PAGE_ROWS, req.user_max_count) if req.user_max_count > 0 else history.PAGE_ROWS
        bars = await history.time_bar_page(
            self.sim.market, inst, unit * req.bar_type_period, req.start_index, req.finish_index,
            self._history_until(inst), limit
        )
        user_msg = list(req.user_msg)
        period = str(req.bar_type_period)
        for k, bar in enumerate(bars):
            if k % 1000 == 0:
                await self.conn.drain()
            self.send(
                wire.build(
                    name,
                    user_msg=user_msg,
                    rq_handler_rp_code=[OK],
                    symbol=inst.symbol,
                    exchange=inst.exchange,
                    type=req.bar_type,
                    period=period,
                    marker=bar.marker,
                    num_trades=bar.num_trades,
                    volume=bar.volume,
                    bid_volume=bar.bid_volume,
                    ask_volume=bar.ask_volume,
                    open_price=inst.price(bar.open),
                    high_price=inst.price(bar.high),
                    low_price=inst.price(bar.low),
                    close_price=inst.price(bar.close),
                )
            )
        self.reply(req, name, symbol=inst.symbol, exchange=inst.exchange)
