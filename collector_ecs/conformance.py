"""`python -m collector_ecs conformance`: Rithmic's conformance step. It logs in to the order plant
of the configured system with RITHMIC_APP_NAME / RITHMIC_APP_VERSION and stays logged in
(heartbeats, reconnects with backoff) until Ctrl-C or SIGTERM, printing a status line every
CONFORMANCE_STATUS_INTERVAL_S, while Rithmic checks the session on its side."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime

from .check_connection import explain
from .config import Settings
from .rithmic_internals import (
    ORDER_ONLY,
    app_presented,
    gateway_systems,
    guard_login,
    heartbeat_interval,
    make_client,
    on_login,
    plant_ready,
    shut_down,
    steady_heartbeats,
)
from .session import is_permission_denied


class _Stopped(Exception):
    """Ctrl-C or SIGTERM arrived before the first login finished."""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Conformance:
    """One order-plant session kept alive; `run()` returns the process's exit code."""

    def __init__(self, settings: Settings, out=None):
        self.settings = settings
        self.out = out or sys.stdout
        self.client = None
        self.logins = 0
        self.logged_in_at: float | None = None
        self.refused: BaseException | None = None  # the latest refused login
        self.gave_up: BaseException | None = None  # a refused re-login that ended the session
        self._stop: asyncio.Event | None = None

    def say(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{stamp} conformance: {text}", file=self.out, flush=True)

    @property
    def order(self):
        return self.client.plants["order"]

    async def run(self) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            return await self._run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _run(self) -> int:
        s = self.settings
        self.client = make_client(
            user=s.rithmic_user, password=s.rithmic_password.value, system_name=s.rithmic_system_name,
            app_name=s.rithmic_app_name, app_version=s.rithmic_app_version, url=s.rithmic_url,
            ca_file=s.rithmic_ca_file, max_reconnect_delay=s.max_reconnect_delay_s)
        guard_login(self.order, self._login_refused)
        steady_heartbeats(self.order)
        on_login(self.client, "order", self._logged_in)
        app, version = app_presented(self.client)
        self.say(f"presenting application name '{app}' version '{version}' as user {s.rithmic_user} "
                 f"to {s.rithmic_url}")
        try:
            systems = await self._unless_stopped(gateway_systems(self.client, s.connect_timeout_s, "order"))
            self.say(f"gateway offers: {', '.join(systems)}")
            if not s.rithmic_system_name:
                self.say("FAIL: RITHMIC_SYSTEM_NAME is not set (only Rithmic's test gateway has a default); set it "
                         f"to one of: {', '.join(systems)}")
                return 1
            if s.rithmic_system_name not in systems:
                self.say(f"FAIL: unknown system name '{s.rithmic_system_name}'; set RITHMIC_SYSTEM_NAME to one of: "
                         f"{', '.join(systems)}")
                return 1
            await self._unless_stopped(
                asyncio.wait_for(self.client.connect(plants=ORDER_ONLY), timeout=s.connect_timeout_s))
            self.say(f"staying logged in until Ctrl-C; a status line every {s.conformance_status_interval_s:g} s")
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), s.conformance_status_interval_s)
                except TimeoutError:
                    self.status()
            if self.gave_up is not None:
                self.say("FAIL: " + explain(self.gave_up, s))
                return 1
            return 0
        except _Stopped:
            self.say("stopped before the login completed")
            return 0
        except Exception as exc:
            self.say("FAIL: " + explain(self.refused or exc, s))
            return 1
        finally:
            connected = self.order.is_connected
            await shut_down(self.client, timeout=5)
            if connected:
                self.say(f"logged out of the order plant after {self.logins} login(s)")
            elif self.logins:
                self.say("stopped while reconnecting: no session was open to log out of")

    async def _unless_stopped(self, coro):
        """Await `coro`, but give up on it at once when a stop is requested."""
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise _Stopped
        return work.result()

    def _logged_in(self) -> None:
        self.logins += 1
        self.logged_in_at = time.monotonic()
        s = self.settings
        self.say(f"login {self.logins} OK: order plant of '{s.rithmic_system_name}' as application "
                 f"'{s.rithmic_app_name}'; the gateway asks for a heartbeat every "
                 f"{heartbeat_interval(self.order):g} s")

    async def _login_refused(self, exc: BaseException) -> None:
        self.refused = exc
        # After a drop the library retries the login forever; a refused password or application
        # name will not fix itself, so stop and say why (the first login fails on its own).
        if self.logins and is_permission_denied(exc):
            self.gave_up = exc
            self._stop.set()

    def status(self) -> None:
        s = self.settings
        if plant_ready(self.order) and self.logged_in_at is not None:
            up = _duration(time.monotonic() - self.logged_in_at)
            self.say(f"logged in to the order plant of '{s.rithmic_system_name}' as application "
                     f"'{s.rithmic_app_name}' for {up}; heartbeat every {heartbeat_interval(self.order):g} s; "
                     f"logins {self.logins}, reconnects {max(self.logins - 1, 0)}")
        else:
            self.say(f"connection lost; reconnecting with backoff (up to {s.max_reconnect_delay_s:g} s between "
                     f"attempts); logins so far {self.logins}")


async def conformance(settings: Settings) -> int:
    return await Conformance(settings).run()
