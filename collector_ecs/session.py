"""The Rithmic session: ticker and history plants only (each plant counts against the
account's session limit), our fast path on the ticker plant, and subscription requests
whose answers are awaited rather than ignored."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from async_rithmic.exceptions import RithmicErrorResponse

from .config import Settings
from .rithmic_internals import (
    TICKER_AND_HISTORY,
    LoginRefused,
    forget_subscription,
    guard_login,
    install_fast_path,
    make_client,
    on_login,
    send_market_data_request,
    set_credentials,
    steady_heartbeats,
)
from .secrets import read_json_secret

PERMISSION_DENIED = "13"
REREAD_MIN_INTERVAL_S = 30.0


def is_permission_denied(exc: BaseException) -> bool:
    return isinstance(exc, LoginRefused) and exc.rp_code[:1] == [PERMISSION_DENIED]

log = logging.getLogger("collector.session")


class SubscriptionRefused(Exception):
    """The gateway answered a subscription request with an error."""


class RithmicSession:
    def __init__(self, settings: Settings, ingest, secrets_client=None):
        self.settings = settings
        self.ingest = ingest
        self.client = None
        self._tags = itertools.count(1)
        self._secrets_client = secrets_client
        self._last_reread = 0.0
        self.credential_rereads = 0
        self.on_ticker_login = None  # called after each ticker login, before the library resubscribes

    @property
    def ticker(self):
        return self.client.plants["ticker"]

    @property
    def history(self):
        return self.client.plants["history"]

    @property
    def connected(self) -> bool:
        return self.client is not None and self.ticker.is_connected

    def build(self) -> None:
        """The client with our fast path, login guard, steady heartbeats and login hook (no I/O)."""
        s = self.settings
        self.client = make_client(
            user=s.rithmic_user, password=s.rithmic_password.value, system_name=s.rithmic_system_name,
            app_name=s.rithmic_app_name, app_version=s.rithmic_app_version, url=s.rithmic_url,
            ca_file=s.rithmic_ca_file, max_reconnect_delay=s.max_reconnect_delay_s,
        )
        install_fast_path(self.ticker, self.ingest, self.ingest.now)
        for plant in (self.ticker, self.history):
            guard_login(plant, self._reread_after_refusal if s.rithmic_secret_id else None)
            # The interval the gateway asks for from the first login on: the dead-connection check
            # counts on an answer every interval, through every close.
            steady_heartbeats(plant)
        if self.on_ticker_login is not None:
            on_login(self.client, "ticker", self.on_ticker_login)

    async def start(self) -> None:
        s = self.settings
        self.build()
        try:
            await asyncio.wait_for(self.client.connect(plants=TICKER_AND_HISTORY), timeout=s.connect_timeout_s)
        except RithmicErrorResponse as exc:
            if not (s.rithmic_secret_id and is_permission_denied(exc) and self.credential_rereads):
                raise
            # The password was rotated since start-up and the secret re-read: once more.
            await asyncio.wait_for(self.client.connect(plants=TICKER_AND_HISTORY), timeout=s.connect_timeout_s)

    async def _reread_after_refusal(self, exc: BaseException) -> None:
        """After a rotation the running process still holds the old password: re-read the
        secret (at most every 30 s, so a wrong secret cannot hammer the gateway)."""
        if not is_permission_denied(exc) or time.monotonic() - self._last_reread < REREAD_MIN_INTERVAL_S:
            return
        self._last_reread = time.monotonic()
        secret = await asyncio.to_thread(read_json_secret, self.settings.rithmic_secret_id, self._secrets_client,
                                         ("user", "password"))
        set_credentials(self.client, secret["user"], secret["password"])
        self.credential_rereads += 1
        log.warning("login refused; credentials re-read from Secrets Manager",
                    extra={"fields": {"secret_id": self.settings.rithmic_secret_id}})

    async def stop(self, timeout: float = 3.0) -> None:
        if self.client is not None:
            await self.client.disconnect(timeout=timeout)


    async def _request(self, symbol: str, exchange: str, subscribe: bool, timeout: float) -> None:
        tag = f"rdc-{'sub' if subscribe else 'unsub'}-{next(self._tags)}"
        answer = self.ingest.expect_answer(tag)
        try:
            await send_market_data_request(self.ticker, symbol, exchange, subscribe, tag)
            rp_code = await asyncio.wait_for(answer, timeout)
        finally:
            self.ingest.pending_answers.pop(tag, None)
        if rp_code and rp_code[0] != "0":
            if subscribe:  # don't let the library resubscribe it after a reconnect
                forget_subscription(self.ticker, symbol, exchange)
            raise SubscriptionRefused(" ".join(rp_code[1:]) or f"rp_code {rp_code[0]}")

    async def subscribe(self, symbol: str, exchange: str, timeout: float = 10.0) -> None:
        await self._request(symbol, exchange, True, timeout)

    async def unsubscribe(self, symbol: str, exchange: str, timeout: float = 10.0) -> None:
        await self._request(symbol, exchange, False, timeout)

    async def historical_trades(self, symbol: str, exchange: str, start, end) -> list[dict]:
        return await self.client.get_historical_tick_data(symbol, exchange, start, end, wait=True, idle_timeout=10)


__all__ = ["RithmicSession", "SubscriptionRefused", "RithmicErrorResponse"]
