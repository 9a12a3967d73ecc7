"""The simulator as the unmodified async_rithmic client sees it, over a real socket.

Everything is observed through `RithmicClient` (its public calls, or one of its plants driven
message by message with the client's own WebSocket and codec); the control API is plain HTTP.
The suite's clock (tests/conftest.py) starts at 2026-11-24 15:00 UTC whatever day it runs, so
contract listings and front months are the same every run; every simulator here inherits it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict

import pytest
from async_rithmic import DataType, ReconnectionSettings, RetrySettings, RithmicClient, SysInfraType
from async_rithmic.exceptions import RithmicErrorResponse
from websockets.protocol import State

from rdc_common.clock import default_clock, with_anchor
from rdc_common.products import PRODUCTS, contract, front_month
from simulator.testing import SimulatorProcess

pytestmark = pytest.mark.integration

TODAY = dt.date(2026, 11, 24)
ALL = DataType.LAST_TRADE | DataType.BBO | DataType.ORDER_BOOK
SNAPSHOT_IMAGE, BEGIN, MIDDLE, END, SOLO = 3, 4, 5, 6, 7
TICKER, HISTORY = SysInfraType.TICKER_PLANT, SysInfraType.HISTORY_PLANT

# Real contract specifications (CME Group product pages): tick size, point value, exchange, months.
SPECS = {
    "ES": (0.25, 50.0, "CME", "HMUZ"),
    "NQ": (0.25, 20.0, "CME", "HMUZ"),
    "YM": (1.0, 5.0, "CBOT", "HMUZ"),
    "RTY": (0.10, 50.0, "CME", "HMUZ"),
    "ZN": (1 / 64, 1000.0, "CBOT", "HMUZ"),
    "6E": (0.00005, 125000.0, "CME", "HMUZ"),
    "CL": (0.01, 1000.0, "NYMEX", "FGHJKMNQUVXZ"),
    "GC": (0.10, 100.0, "COMEX", "GJMQVZ"),
}


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(seed=1, rate=200, users="demo:demo,alice:s3cret") as s:
        yield s


def make_client(sim, user="demo", password="demo", system="Rithmic Test") -> RithmicClient:
    client = RithmicClient(
        user=user,
        password=password,
        system_name=system,
        app_name="simulator-tests",
        app_version="1",
        url=sim.url,
        reconnection_settings=ReconnectionSettings(
            max_retries=None, backoff_type="constant", interval=0.5, max_delay=2
        ),
        retry_settings=RetrySettings(max_retries=1, timeout=10.0),
    )
    client.ssl_context = sim.client_ssl_context()  # websockets refuses an SSL context for ws://
    return client


class RawPlant:
    """One plant of a real RithmicClient driven message by message, with the client's own
    WebSocket and codec: for answers its public API swallows (rp_codes, Reject, user_msg)."""

    def __init__(self, client: RithmicClient, name: str):
        self.plant = client.plants[name]

    async def open(self) -> RawPlant:
        await self.plant._connect()
        return self

    async def send(self, template_id: int, **fields) -> None:
        request = self.plant._build_request(template_id=template_id, **fields)
        await self.plant.ws.send(self.plant._convert_request_to_bytes(request))

    async def recv(self, template_id: int, within: float = 10.0):
        deadline = time.monotonic() + within
        while True:
            buffer = await asyncio.wait_for(self.plant.ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            response = self.plant._convert_bytes_to_response(buffer)
            if response is not None and response.template_id == template_id:
                return response

    async def login(self, user="demo", password="demo", system="Rithmic Test"):
        await self.send(
            10,
            template_version="3.9",
            user=user,
            password=password,
            system_name=system,
            app_name="t",
            app_version="1",
            infra_type=self.plant.infra_type,
            user_msg="login",
        )
        return await self.recv(11)

    async def close(self) -> None:
        await self.plant.ws.close()


async def wait_for(predicate, within: float, interval: float = 0.05):
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


def http(url: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Recorder:
    """Everything a client's callbacks deliver, in arrival order, per symbol."""

    def __init__(self, client: RithmicClient):
        self.items: dict[str, list[tuple]] = defaultdict(list)
        self.depth: dict[str, list] = defaultdict(list)
        self.arrivals: list[float] = []
        client.on_tick += self._tick
        client.on_order_book += self._book
        client.on_market_depth += self._depth

    async def _tick(self, data: dict) -> None:
        kind = "trade" if data["data_type"] == DataType.LAST_TRADE else "bbo"
        self.items[data["symbol"]].append((kind, data))
        self.arrivals.append(time.monotonic())

    async def _book(self, msg) -> None:
        self.items[msg.symbol].append(("book", msg))
        self.arrivals.append(time.monotonic())

    async def _depth(self, msg) -> None:
        self.depth[msg.symbol].append(msg)

    def of(self, symbol: str, kind: str) -> list:
        return [x for k, x in self.items[symbol] if k == kind]

    def trades(self, symbol: str) -> list[tuple]:
        """(source_ssboe, source_usecs, price, size, aggressor) of each live (not snapshot) trade:
        the exchange's time, as history replays it."""
        return [
            (t["source_ssboe"], t["source_usecs"], t["trade_price"], t["trade_size"], t["aggressor"])
            for t in self.of(symbol, "trade")
            if not t.get("is_snapshot")
        ]


def on_grid(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


def stamp(kind: str, x) -> tuple[int, int]:
    """The event's exchange time: a trade's source_*, a quote's or book message's ssboe/usecs."""
    if kind == "book":
        return x.ssboe, x.usecs
    if kind == "trade":
        return x["source_ssboe"], x["source_usecs"]
    return x["ssboe"], x["usecs"]


# --- 1. session ---------------------------------------------------------------------------------


async def test_system_info_lists_paper_trading_and_test_and_the_client_checks_the_name(sim):
    client = make_client(sim, system="Rithmic 99")
    with pytest.raises(Exception, match="SYSTEM_NAME") as refused:
        await client.connect(plants=[TICKER])
    assert "Rithmic Paper Trading" in str(refused.value)
    assert "Rithmic Test" in str(refused.value)


async def test_default_connect_logs_in_every_plant_and_gets_empty_order_results(sim):
    client = make_client(sim, system="Rithmic Paper Trading")
    await client.connect()
    try:
        every_plant = {"history": 1, "order": 1, "pnl": 1, "ticker": 1}
        assert await wait_for(lambda: sim.stats()["sessions"] == every_plant, 5), sim.stats()["sessions"]
        assert client.accounts == []
        assert client.plants["order"].trade_routes == []
        assert client.fcm_id and client.ib_id
    finally:
        await client.disconnect()
    repo = make_client(sim)
    await repo.connect(plants=[SysInfraType.REPOSITORY_PLANT])
    try:
        assert await repo.list_unaccepted_agreements() == []
        assert await repo.list_accepted_agreements() == []
    finally:
        await repo.disconnect()
    assert await wait_for(lambda: sim.stats()["connections"] == 0, 5)


@pytest.mark.parametrize("user,password", [("demo", "wrong"), ("nobody", "demo"), ("alice", "demo")])
async def test_bad_credentials_get_permission_denied_13(sim, user, password):
    raw = await RawPlant(make_client(sim), "history").open()
    try:
        response = await raw.login(user, password)
    finally:
        await raw.close()
    assert response.rp_code[0] == "13"
    assert list(response.user_msg) == ["login"]
    refused = make_client(sim, user, password)
    with pytest.raises(Exception):  # noqa: B017 - async_rithmic raises whatever a failed login leaves it with
        await refused.connect(plants=[HISTORY])
    await refused.plants["history"].ws.close()  # async_rithmic leaves the refused socket open


async def test_second_user_from_users_option_logs_in(sim):
    raw = await RawPlant(make_client(sim, "alice", "s3cret"), "history").open()
    try:
        response = await raw.login("alice", "s3cret")
    finally:
        await raw.close()
    assert list(response.rp_code) == ["0"]
    assert response.heartbeat_interval > 0


async def test_unknown_system_name_is_refused_naming_the_valid_ones(sim):
    raw = await RawPlant(make_client(sim), "history").open()
    try:
        response = await raw.login(system="Rithmic 99")
    finally:
        await raw.close()
    assert response.rp_code[0] not in ("0", "")
    assert "Rithmic Paper Trading" in response.rp_code[1] and "Rithmic Test" in response.rp_code[1]


async def test_requests_before_login_are_rejected_and_heartbeats_answered(sim):
    raw = await RawPlant(make_client(sim), "ticker").open()
    try:
        await raw.send(100, user_msg="early", symbol="ESZ6", exchange="CME", request=1, update_bits=1)
        reject = await raw.recv(75)
        await raw.send(18, user_msg="hb")
        heartbeat = await raw.recv(19)
    finally:
        await raw.close()
    assert reject.rp_code[0] == "13" and list(reject.user_msg) == ["early"]
    assert list(heartbeat.rp_code) == ["0"] and list(heartbeat.user_msg) == ["hb"]


async def test_logout_is_answered_and_stops_market_data(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("NQZ6", "CME", DataType.BBO)
        assert await wait_for(lambda: len(rec.of("NQZ6", "bbo")) > 3, 5)
        await client.plants["ticker"]._logout()
        await asyncio.sleep(0.3)
        seen = len(rec.of("NQZ6", "bbo"))
        await asyncio.sleep(0.7)
        assert len(rec.of("NQZ6", "bbo")) == seen
        assert sim.stats()["sessions"].get("ticker", 0) == 0
    finally:
        await client.disconnect()


# --- 2. reference data --------------------------------------------------------------------------


async def test_front_month_of_every_catalogue_product_follows_its_roll_rule(sim):
    client = make_client(sim)
    await client.connect(plants=[TICKER])
    try:
        assert await client.get_front_month_contract("ES", "CME") == "ESZ6"  # ES on 2026-11-24
        for code, (_tick, _value, exchange, _months) in SPECS.items():
            expected = front_month(PRODUCTS[code], TODAY).symbol
            assert await client.get_front_month_contract(code, exchange) == expected, code
        with pytest.raises(RithmicErrorResponse):
            await client.get_front_month_contract("ZZ", "CME")
        with pytest.raises(RithmicErrorResponse):
            await client.get_front_month_contract("ES", "NYMEX")
    finally:
        await client.disconnect()


async def test_listings_and_the_front_month_follow_the_simulators_clock_across_the_decade():
    """At 2029-12-20 (RDC_CLOCK_*, whatever the real date) ES's front month is ESH0, the March 2030
    contract, and a contract that expired in September is refused with the reason."""
    clock = with_anchor({"RDC_CLOCK_START": "2029-12-20T15:00:00+00:00", "RDC_CLOCK_SPEED": "1"})
    with SimulatorProcess(seed=3, rate=50, clock=clock) as late:
        client = make_client(late)
        await client.connect(plants=[TICKER])
        try:
            assert await client.get_front_month_contract("ES", "CME") == "ESH0"
            assert await client.get_front_month_contract("CL", "NYMEX") == "CLG0"  # CLF0 stopped trading today
            listed = [r.symbol for r in await client.search_symbols("ES", product_code="ES", exchange="CME")]
            assert {"ESZ9", "ESH0", "ESM0"} <= set(listed) and "ESZ6" not in listed
            ref = await client.get_reference_data("ESH0", "CME")
            assert ref.expiration_date == "20300315"
        finally:
            await client.disconnect()
        raw = await RawPlant(make_client(late), "ticker").open()
        try:
            assert list((await raw.login()).rp_code) == ["0"]
            await raw.send(100, user_msg="old", symbol="ESU9", exchange="CME", request=1, update_bits=1)
            refused = await raw.recv(101)
            assert refused.rp_code[0] != "0"
            assert "expired at 2029-09-21T21:00:00+00:00" in refused.rp_code[1]  # 16:00 CDT, its last day
            await raw.send(100, user_msg="front", symbol="ESH0", exchange="CME", request=1, update_bits=1)
            assert list((await raw.recv(101)).rp_code) == ["0"]
        finally:
            await raw.close()


async def test_catalogue_specifications_and_twelve_months_of_contracts(sim):
    client = make_client(sim)
    await client.connect(plants=[TICKER])
    try:
        for code, (tick, point_value, exchange, months) in SPECS.items():
            rows = await client.search_symbols(code, product_code=code, exchange=exchange)
            symbols = [r.symbol for r in rows]
            assert all(r.exchange == exchange and r.product_code == code for r in rows)
            assert {s[len(code)] for s in symbols} <= set(months), code
            assert min(r.expiration_date for r in rows) >= TODAY.strftime("%Y%m%d"), "none expired"
            months_listed = {(c.year, c.month) for c in (contract(s, TODAY) for s in symbols)}
            assert max(months_listed) >= (TODAY.year + 1, TODAY.month), f"{code}: a year of contracts or more"
            ref = await client.get_reference_data(symbols[0], exchange)
            assert ref.min_fprice_change == pytest.approx(tick) and ref.single_point_value == point_value, code
            assert ref.exchange == exchange and ref.product_code == code
        codes = await client.get_product_codes("CME")
        assert {"ES", "NQ", "RTY", "6E"} <= {r.product_code for r in codes}
    finally:
        await client.disconnect()


async def test_anything_outside_the_catalogue_gets_an_error_not_silence(sim):
    raw = await RawPlant(make_client(sim), "ticker").open()
    try:
        assert list((await raw.login()).rp_code) == ["0"]
        cases = [
            (100, 101, dict(symbol="ZZZZ9", exchange="CME", request=1, update_bits=7)),
            (100, 101, dict(symbol="ESZ6", exchange="XCME", request=1, update_bits=7)),
            (100, 101, dict(symbol="ESZ6", exchange="NYMEX", request=1, update_bits=7)),
            (113, 114, dict(symbol="ZZ", exchange="CME")),
            (14, 15, dict(symbol="ZZZZ9", exchange="CME")),
            (111, 112, dict(exchange="XCME")),
            (109, 110, dict(search_text="NOSUCHTHING")),
        ]
        for k, (template, answer, fields) in enumerate(cases):
            await raw.send(template, user_msg=f"q{k}", **fields)
            response = await raw.recv(answer)
            assert list(response.user_msg) == [f"q{k}"], fields
            assert response.rp_code[0] != "0" and len(response.rp_code) == 2 and response.rp_code[1], fields
        await raw.send(100, user_msg="ok", symbol="ESZ6", exchange="CME", request=1, update_bits=1)
        assert list((await raw.recv(101)).rp_code) == ["0"]
        await raw.send(113, user_msg="fm", symbol="ZZ", exchange="CME")
        assert (await raw.recv(114)).rp_code[0] not in ("0", "7")
    finally:
        await raw.close()
    history = await RawPlant(make_client(sim), "history").open()
    try:
        await history.login()
        await history.send(
            206,
            user_msg="ZZZZ9_CME",
            symbol="ZZZZ9",
            exchange="CME",
            bar_type=1,
            bar_type_specifier="1",
            start_index=int(market_now()) - 10,
            finish_index=int(market_now()),
        )
        response = await history.recv(207)
        assert response.rp_code[0] == "5" and list(response.user_msg) == ["ZZZZ9_CME"]
    finally:
        await history.close()


# --- 3. market data -----------------------------------------------------------------------------


def check_symbol_stream(items: list[tuple], tick: float) -> dict:
    """Replays one symbol's stream and asserts every market invariant; returns what it saw."""
    book = {1: {}, 2: {}}
    orders = {1: {}, 2: {}}  # resting orders per level, from the OrderBook messages' order counts
    last_bbo = None
    last_stamp = (0, 0)
    volume = None
    update_types = Counter()
    open_update = False
    pending_check = False
    books = [x for k, x in items if k == "book"]
    assert books and books[0].update_type == SNAPSHOT_IMAGE, "a book starts with its snapshot"
    assert len(books[0].bid_price) >= 10 and len(books[0].ask_price) >= 10

    def check_top():
        bids, asks = book[1], book[2]
        assert len(bids) >= 10 and len(asks) >= 10
        b, a = max(bids), min(asks)
        assert b < a
        assert last_bbo is not None
        assert (b, bids[b], a, asks[a]) == (
            last_bbo["bid_price"],
            last_bbo["bid_size"],
            last_bbo["ask_price"],
            last_bbo["ask_size"],
        ), "book top equals the BBO"
        assert (orders[1][b], orders[2][a]) == (last_bbo["bid_orders"], last_bbo["ask_orders"]), \
            "the BBO's order counts are the book top's"

    for kind, x in items:
        ts = stamp(kind, x)
        if pending_check and ts != last_stamp:
            check_top()  # the previous event is complete
            pending_check = False
        assert ts >= last_stamp, "exchange timestamps never decrease"
        last_stamp = ts
        if kind == "trade":
            assert x["trade_size"] > 0 and x["aggressor"] in (1, 2)
            # the exchange's time to the nanosecond, and the gateway's stamp a few hundred us after it
            assert x["source_nsecs"] // 1000 == x["source_usecs"]
            delay = (x["ssboe"] - x["source_ssboe"]) * 1_000_000 + x["usecs"] - x["source_usecs"]
            assert 150 <= delay <= 600, delay
            assert on_grid(x["trade_price"], tick)
            if not x.get("is_snapshot"):
                assert last_bbo is not None
                touch = last_bbo["ask_price"] if x["aggressor"] == 1 else last_bbo["bid_price"]
                assert x["trade_price"] == touch, "trades print at the bid or the ask"
                if volume is not None:
                    assert int(x["volume"]) == volume + x["trade_size"], "volume is cumulative"
            volume = int(x["volume"])
        elif kind == "bbo":
            assert x["bid_price"] < x["ask_price"]
            assert on_grid(x["bid_price"], tick) and on_grid(x["ask_price"], tick)
            last_bbo = x
        else:
            update_types[x.update_type] += 1
            if x.update_type == SNAPSHOT_IMAGE:
                book = {
                    1: dict(zip(x.bid_price, x.bid_size, strict=True)),
                    2: dict(zip(x.ask_price, x.ask_size, strict=True)),
                }
                orders = {1: dict(zip(x.bid_price, x.bid_orders, strict=True)),
                          2: dict(zip(x.ask_price, x.ask_orders, strict=True))}
            else:
                assert x.update_type in (BEGIN, MIDDLE, END, SOLO)
                assert open_update == (x.update_type in (MIDDLE, END)), "BEGIN ... END are bracketed"
                open_update = x.update_type in (BEGIN, MIDDLE)
                for side, prices, sizes, counts in ((1, x.bid_price, x.bid_size, x.bid_orders),
                                                    (2, x.ask_price, x.ask_size, x.ask_orders)):
                    for price, size, count in zip(prices, sizes, counts, strict=True):
                        assert on_grid(price, tick)
                        if size:
                            assert 1 <= count <= size, "a level holds at least one order of at least one contract"
                            book[side][price] = size
                            orders[side][price] = count
                        else:
                            assert count == 0
                            book[side].pop(price, None)
                            orders[side].pop(price, None)
            pending_check = not open_update
    return {"update_types": update_types}


async def test_trades_quotes_and_books_are_consistent(sim):
    symbols = {"ESZ6": 0.25, "ZNH7": 1 / 64, "6EZ6": 0.00005}
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        for symbol in symbols:
            exchange = "CBOT" if symbol.startswith("ZN") else "CME"
            await client.subscribe_to_market_data(symbol, exchange, ALL)
        assert await wait_for(lambda: all(len(rec.trades(s)) >= 40 for s in symbols), 15)
    finally:
        await client.disconnect()
    seen = Counter()
    for symbol, tick in symbols.items():
        seen += check_symbol_stream(rec.items[symbol], tick)["update_types"]
        assert rec.of(symbol, "bbo")[0].get("is_snapshot") and rec.of(symbol, "trade")[0].get("is_snapshot")
    assert seen[SOLO] and seen[BEGIN] and seen[END], seen


async def test_unsubscribing_by_update_bits(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("RTYZ6", "CME", DataType.LAST_TRADE | DataType.BBO)
        assert await wait_for(lambda: len(rec.of("RTYZ6", "bbo")) > 5, 5)
        await client.unsubscribe_from_market_data("RTYZ6", "CME", DataType.BBO)
        await asyncio.sleep(0.3)
        bbo, trades = len(rec.of("RTYZ6", "bbo")), len(rec.of("RTYZ6", "trade"))
        assert await wait_for(lambda: len(rec.of("RTYZ6", "trade")) > trades + 5, 5)
        assert len(rec.of("RTYZ6", "bbo")) == bbo
        assert not rec.of("RTYZ6", "book")
    finally:
        await client.disconnect()


# --- 4. history ---------------------------------------------------------------------------------


def market_now() -> float:
    """The simulator's "now": the suite's clock (tests/conftest.py), not the real date."""
    return default_clock().now()


def utc(second: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(second, dt.UTC)


def replayed(ticks: list[dict]) -> list[tuple]:
    return [
        (
            t["data_bar_ssboe"][0],
            t["data_bar_usecs"][0],
            t["close_price"],
            int(t["volume"]),
            1 if int(t.get("ask_volume", 0)) else 2,
        )
        for t in ticks
    ]


async def test_history_replays_exactly_what_streamed_live(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER, HISTORY])
    try:
        await client.subscribe_to_market_data("ESZ6", "CME", DataType.LAST_TRADE)
        started = int(market_now())
        assert await wait_for(lambda: market_now() > started + 4, 6)
        live = rec.trades("ESZ6")
        first, last = started + 1, live[-1][0]  # whole seconds inside the live window
        ticks = await client.get_historical_tick_data("ESZ6", "CME", utc(first), utc(last))
        bars = await client.get_historical_time_bars("ESZ6", "CME", utc(first), utc(last), 1, 1)
    finally:
        await client.disconnect()
    expected = [t for t in live if first <= t[0] < last]
    assert len(expected) > 10
    assert replayed(ticks) == expected
    by_second = defaultdict(list)
    for t in expected:
        by_second[t[0]].append(t)
    assert [b["marker"] for b in bars] == sorted(by_second)
    for bar in bars:
        trades = by_second[bar["marker"]]
        assert int(bar["num_trades"]) == len(trades) and int(bar["volume"]) == sum(t[3] for t in trades)
        assert bar["open_price"] == trades[0][2] and bar["close_price"] == trades[-1][2]
        assert bar["high_price"] == max(t[2] for t in trades) and bar["low_price"] == min(t[2] for t in trades)


async def test_history_pages_like_the_gateway_without_losing_a_tick(sim):
    client = make_client(sim)
    await client.connect(plants=[HISTORY])
    plant = client.plants["history"]
    pages = []
    request = plant._request_historical_ticks

    async def counting(key):
        pages.append(plant.historical_tick_requests[key].start_index)
        await request(key)

    plant._request_historical_ticks = counting
    end = (int(market_now()) - 2) // 60 * 60  # whole minutes, so minute bars cover exactly the range
    start = end - 600
    try:
        ticks = await client.get_historical_tick_data("CLF7", "NYMEX", utc(start), utc(end))
        minutes = await client.get_historical_time_bars("CLF7", "NYMEX", utc(start), utc(end), 2, 1)
    finally:
        await client.disconnect()
    stamps = [(t["data_bar_ssboe"][0], t["data_bar_usecs"][0]) for t in ticks]
    assert len(ticks) > 10_000 and len(pages) >= 3
    assert stamps == sorted(set(stamps)), "strictly increasing: nothing repeated, nothing reordered"
    assert start <= stamps[0][0] and stamps[-1][0] < end
    per_minute = Counter(s // 60 * 60 for s, _ in stamps)
    assert {b["marker"]: int(b["num_trades"]) for b in minutes} == per_minute


async def test_two_runs_with_the_same_seed_have_the_same_history(sim):
    end = int(market_now()) - 5
    start = end - 20

    async def history(process) -> list[tuple]:
        client = make_client(process)
        await client.connect(plants=[HISTORY])
        try:
            return replayed(await client.get_historical_tick_data("GCG7", "COMEX", utc(start), utc(end)))
        finally:
            await client.disconnect()

    with SimulatorProcess(seed=1, rate=200) as again:
        same = await history(again)
    with SimulatorProcess(seed=2, rate=200) as other:
        different = await history(other)
    first = await history(sim)
    assert len(first) > 100
    assert same == first
    assert different != first


# --- 5. market-by-order depth -------------------------------------------------------------------


async def test_market_by_order_depth_adds_up_to_the_book(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("NQZ6", "CME", DataType.ORDER_BOOK)
        assert await wait_for(lambda: rec.of("NQZ6", "book"), 5)
        # A bid level the latest book message says holds orders now. A level can still empty before the
        # request arrives (the gateway then answers "no data", and async_rithmic returns None): pick again.
        snapshot = None
        for _ in range(5):
            latest = next(m for m in reversed(rec.of("NQZ6", "book")) if any(m.bid_size))
            price = max(p for p, size in zip(latest.bid_price, latest.bid_size, strict=True) if size)
            await client.subscribe_to_market_depth("NQZ6", "CME", price)
            snapshot = await client.request_market_depth("NQZ6", "CME", price)
            if snapshot is not None:
                break
            await client.unsubscribe_from_market_depth("NQZ6", "CME", price)
        assert snapshot is not None and snapshot.depth_price == price
        assert len(snapshot.exchange_order_id) == len(snapshot.depth_size) >= 1
        await asyncio.sleep(3)
    finally:
        await client.disconnect()
    # the level's size and order count over time, from the aggregated book
    level: list[tuple[tuple[int, int], tuple[int, int]]] = []
    book = {1: {}, 2: {}}
    for msg in rec.of("NQZ6", "book"):
        if msg.update_type == SNAPSHOT_IMAGE:
            book = {1: {}, 2: {}}
        for side, prices, sizes, counts in ((1, msg.bid_price, msg.bid_size, msg.bid_orders),
                                            (2, msg.ask_price, msg.ask_size, msg.ask_orders)):
            for p, s, n in zip(prices, sizes, counts, strict=True):
                if s:
                    book[side][p] = (s, n)
                else:
                    book[side].pop(p, None)
        here = book[1].get(price) or book[2].get(price) or (0, 0)
        level.append(((msg.ssboe, msg.usecs), here))

    def book_level(at: tuple[int, int]) -> tuple[int, int]:
        return [s for t, s in level if t <= at][-1]

    def as_of(seq: int) -> tuple[int, int]:
        return divmod(seq, 1_000_000)

    orders = dict(zip(snapshot.exchange_order_id, snapshot.depth_size, strict=True))
    # The book's size and order count at the price are the sum and the number of the orders shown.
    assert (sum(orders.values()), len(orders)) == book_level(as_of(snapshot.sequence_number))
    # This level's updates only (a level given up above may have sent some before its unsubscribe).
    depth = [m for m in rec.depth["NQZ6"] if set(m.depth_price) == {price}]
    updates = [m for m in depth if m.sequence_number > snapshot.sequence_number]
    assert updates, "the level changed in three seconds"
    sequence = [m.sequence_number for m in depth]
    assert sequence == sorted(set(sequence))
    for msg in updates:
        for kind, oid, size in zip(msg.update_type, msg.exchange_order_id, msg.depth_size, strict=True):
            if kind == 3:
                orders.pop(oid)
            else:
                assert (kind == 1) == (oid not in orders)
                orders[oid] = size
        assert (sum(orders.values()), len(orders)) == book_level(as_of(msg.sequence_number))


# --- 6. control API and faults ------------------------------------------------------------------


async def test_stats_count_exactly_what_the_client_received():
    symbols = {"YMZ6": "CBOT", "GCG7": "COMEX"}
    # Its own simulator: the module's may still hold a socket an earlier test's client failed to close.
    with SimulatorProcess(seed=1, rate=200) as sim:
        assert sim.stats()["connections"] == 0
        client = make_client(sim)
        rec = Recorder(client)
        await client.connect(plants=[TICKER])
        try:
            for symbol, exchange in symbols.items():
                await client.subscribe_to_market_data(symbol, exchange, ALL)
            await asyncio.sleep(2)
            for symbol, exchange in symbols.items():
                await client.unsubscribe_from_market_data(symbol, exchange, ALL)

            def received(symbol):
                trades = rec.of(symbol, "trade")
                return {
                    "last_trade": sum(not t.get("is_snapshot") for t in trades),
                    "last_trade_snapshot": sum(bool(t.get("is_snapshot")) for t in trades),
                    "bbo": len(rec.of(symbol, "bbo")),
                    "order_book": len(rec.of(symbol, "book")),
                }

            assert await wait_for(lambda: all(sim.stats()["sent"][s] == received(s) for s in symbols), 5)
            assert all(received(s)["last_trade"] > 20 for s in symbols)
            assert await wait_for(lambda: sim.stats()["connections"] == 1, 15)
        finally:
            await client.disconnect()


def test_control_api_answers_bad_requests_with_json_errors(sim):
    assert http(sim.control_url + "/nope")[0] == 404
    assert http(sim.control_url + "/stats", "POST")[0] == 405
    status, body = http(sim.control_url + "/rate?value=fast", "POST")
    assert status == 400 and "value" in body["error"]
    assert http(sim.control_url + "/faults/stall", "POST")[0] == 400


async def test_disconnect_fault_drops_connections_and_the_client_recovers(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("ESZ6", "CME", DataType.BBO)
        assert await wait_for(lambda: len(rec.of("ESZ6", "bbo")) > 3, 5)
        ws = client.plants["ticker"].ws
        assert sim.disconnect()["dropped"] >= 1
        assert await wait_for(lambda: ws.state is State.CLOSED, 5)
        assert ws.close_code == 1006, "abrupt: no close frame"
        before = len(rec.of("ESZ6", "bbo"))
        assert await wait_for(lambda: sum(bool(b.get("is_snapshot")) for b in rec.of("ESZ6", "bbo")[before:]), 10)
        assert await wait_for(lambda: len(rec.of("ESZ6", "bbo")) > before + 5, 5)
    finally:
        await client.disconnect()


async def test_stall_fault_pauses_market_data_without_closing(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("ESZ6", "CME", ALL)
        assert await wait_for(lambda: len(rec.arrivals) > 10, 5)
        ws = client.plants["ticker"].ws
        sim.stall(2)
        await asyncio.sleep(0.3)
        quiet_from = len(rec.arrivals)
        await asyncio.sleep(1.2)
        assert len(rec.arrivals) == quiet_from, "nothing sent while stalled"
        assert ws.state is State.OPEN and client.plants["ticker"].ws is ws
        assert await wait_for(lambda: len(rec.arrivals) > quiet_from + 10, 5)
    finally:
        await client.disconnect()
    resumed = [x for k, x in rec.items["ESZ6"] if k == "book"]
    assert [b.update_type for b in resumed].count(SNAPSHOT_IMAGE) == 2, "resumes from a fresh snapshot"


async def test_forced_logout_sends_template_77_and_closes(sim, caplog):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("ESZ6", "CME", DataType.LAST_TRADE)
        assert await wait_for(lambda: len(rec.of("ESZ6", "trade")) > 2, 5)
        ws = client.plants["ticker"].ws
        with caplog.at_level(logging.WARNING, logger="rithmic"):
            assert sim.forced_logout()["logged_out"] >= 1
            assert await wait_for(lambda: ws.state is State.CLOSED, 5)
        assert any("ForcedLogout" in r.getMessage() for r in caplog.records)
        assert ws.close_code == 1000
        before = len(rec.of("ESZ6", "trade"))
        assert await wait_for(lambda: len(rec.of("ESZ6", "trade")) > before + 3, 10), "reconnected and resubscribed"
    finally:
        await client.disconnect()


async def test_garbage_frames_are_survived_and_not_counted(sim, caplog):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER])
    try:
        await client.subscribe_to_market_data("ZBH7", "CBOT", DataType.BBO)
        assert await wait_for(lambda: len(rec.of("ZBH7", "bbo")) > 3, 5)
        ws = client.plants["ticker"].ws
        with caplog.at_level(logging.WARNING, logger="rithmic"):
            assert sim.send_garbage()["sessions"] >= 1
            before = len(rec.of("ZBH7", "bbo"))
            assert await wait_for(lambda: len(rec.of("ZBH7", "bbo")) > before + 3, 5)
        assert any("unknown template ID: 358" in r.getMessage() for r in caplog.records)
        assert client.plants["ticker"].ws is ws and ws.state is State.OPEN
        await client.unsubscribe_from_market_data("ZBH7", "CBOT", DataType.BBO)
        assert await wait_for(lambda: sim.stats()["sent"]["ZBH7"]["bbo"] == len(rec.of("ZBH7", "bbo")), 5)
    finally:
        await client.disconnect()


async def test_rate_changes_from_the_next_second_and_history_stays_true(sim):
    client = make_client(sim)
    rec = Recorder(client)
    await client.connect(plants=[TICKER, HISTORY])
    try:
        await client.subscribe_to_market_data("RTYZ6", "CME", DataType.LAST_TRADE)
        await asyncio.sleep(1.5)
        effective = sim.set_rate(5000)["effective_from"]
        assert effective == int(market_now()) + 1 or effective == int(market_now())
        # Trades arrive in time order: once one from past the window is here, the window is complete
        # (on a loaded machine the wall clock can pass effective + 3 with trades still in flight).
        assert await wait_for(lambda: any(t[0] >= effective + 3 for t in rec.trades("RTYZ6")), 15)
        sim.set_rate(200)
        live = rec.trades("RTYZ6")
        before = [t for t in live if effective - 3 <= t[0] < effective]
        after = [t for t in live if effective <= t[0] < effective + 3]
        ticks = await client.get_historical_tick_data("RTYZ6", "CME", utc(effective - 1), utc(effective + 3))
    finally:
        await client.disconnect()
    assert len(after) > 2 * len(before), "25 times the rate; bursts vary by second"
    assert replayed(ticks) == [t for t in live if effective - 1 <= t[0] < effective + 3]


async def test_silent_sessions_are_dropped_after_the_heartbeat_interval():
    with SimulatorProcess(seed=5, rate=50, heartbeat_interval=2) as quick:
        silent, chatty = make_client(quick), make_client(quick)
        await silent.connect(plants=[TICKER])
        await chatty.connect(plants=[TICKER])
        try:
            # the simulator's date is the suite clock's: the front month is the catalogue's for it
            today = default_clock().today()
            assert await chatty.get_front_month_contract("ES", "CME") == front_month(PRODUCTS["ES"], today).symbol
            plant = silent.plants["ticker"]
            for task in plant._bg_tasks:
                if task.get_name() in ("heartbeat_loop", "reconnect_loop"):
                    task.cancel()

            async def keep_talking():
                # async_rithmic's own heartbeat loop started its first sleep with the default 30 s,
                # before login negotiated 2 s: heartbeat at the negotiated pace, as a client must.
                while True:
                    await chatty.plants["ticker"]._send_heartbeat()
                    await asyncio.sleep(0.5)

            talker = asyncio.create_task(keep_talking())
            silent_ws, chatty_ws = plant.ws, chatty.plants["ticker"].ws
            assert await wait_for(lambda: silent_ws.state is State.CLOSED, 6)
            await asyncio.sleep(2.5)  # past the interval again: the chatty one is still there
            assert chatty_ws.state is State.OPEN and chatty.plants["ticker"].ws is chatty_ws
            talker.cancel()
        finally:
            await chatty.disconnect()
            await silent.disconnect()


async def test_tls_serves_wss_with_a_certificate_the_client_can_trust():
    with SimulatorProcess(seed=3, rate=100, tls=True) as secure:
        assert secure.url.startswith("wss://") and secure.cert_file.is_file()
        client = make_client(secure)
        rec = Recorder(client)
        await client.connect(plants=[TICKER])
        try:
            await client.subscribe_to_market_data("ESZ6", "CME", DataType.BBO)
            assert await wait_for(lambda: len(rec.of("ESZ6", "bbo")) > 3, 5)
        finally:
            await client.disconnect()
        untrusting = make_client(secure)
        untrusting.ssl_context = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusting.connect(plants=[TICKER])
