"""`python -m collector_ecs check-connection`: the old test_connection.py, with answers a
person can act on (permission denied, unknown system name, timeouts, TLS), plus what the session
looked like: the application name presented, the plants reached and the heartbeat interval."""

from __future__ import annotations

import asyncio
import re
import ssl

import websockets
from async_rithmic.exceptions import RithmicErrorResponse

from rdc_common.gateways import is_test_gateway
from rdc_common.products import PRODUCTS

from .config import Settings
from .rithmic_internals import (
    TICKER_AND_HISTORY,
    app_presented,
    gateway_systems,
    guard_login,
    heartbeat_interval,
    make_client,
)
from .session import is_permission_denied

# A refusal text that names the application (Rithmic's usual answer is a bare "permission denied").
_NAMES_THE_APP = re.compile(r"\bapp(lication)?\b|app_?name", re.IGNORECASE)


def explain_permission_denied(exc: BaseException, settings: Settings) -> str:
    """Code 13, with the likely cause where the gateway's answer allows telling one apart.

    Rithmic answers `["13", "permission denied"]` alike for a wrong password, for agreements not
    signed yet and for an application name it has not approved (users' reports on async_rithmic's
    tracker, issues 24 and 40), so on a production gateway the answer alone cannot say which.
    """
    app = settings.rithmic_app_name
    said = " ".join(getattr(exc, "rp_code", [])[1:]).strip()
    head = "permission denied (Rithmic code 13)"
    if said and said.lower() != "permission denied":
        head += f" (the gateway said '{said}')"
    if said and _NAMES_THE_APP.search(said):
        return (f"{head}: the gateway refused the application name '{app}': set RITHMIC_APP_NAME to exactly the "
                "name Rithmic approved after conformance, prefix included")
    if is_test_gateway(settings.rithmic_url):
        return (f"{head}: most likely RITHMIC_USER or RITHMIC_PASSWORD, not the application name '{app}' (the test "
                "gateway is where conformance runs, before Rithmic approves any name). Use the test credentials "
                "Rithmic sent you; a broker's or prop firm's login is refused there")
    return (f"{head}: check RITHMIC_USER and RITHMIC_PASSWORD first. The gateway gives this same answer for a wrong "
            "password, for Rithmic agreements not yet signed, and for an application name Rithmic has not approved, "
            f"so it cannot tell which: RITHMIC_APP_NAME ('{app}') must be exactly the name Rithmic approved after "
            "conformance, prefix included, and the account must be approved for API access on this system")


def explain(exc: BaseException, settings: Settings) -> str:
    """One plain-English sentence for a failure to reach or log in to the gateway."""
    text = str(exc)
    if is_permission_denied(exc):
        return explain_permission_denied(exc, settings)
    if "SYSTEM_NAME" in text or "system name" in text.lower():
        return f"unknown system name '{settings.rithmic_system_name}': {text.split(':', 1)[-1].strip()}"
    if isinstance(exc, ssl.SSLError | ssl.SSLCertVerificationError) or "CERTIFICATE" in text.upper():
        return (f"TLS failed talking to {settings.rithmic_url}: {text[:200]}. For a private gateway such as "
                "the simulator set RITHMIC_CA_FILE to its certificate")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"timed out reaching {settings.rithmic_url}: check RITHMIC_URL and your network"
    if isinstance(exc, OSError | websockets.exceptions.InvalidURI | websockets.exceptions.InvalidHandshake):
        return f"cannot reach {settings.rithmic_url}: {text[:200]}"
    if isinstance(exc, RithmicErrorResponse):
        return f"the gateway refused the login: {text[:300]}"
    return f"{type(exc).__name__}: {text[:300]}"


async def check(settings: Settings, product_code: str = "ES") -> int:
    s = settings
    client = make_client(user=s.rithmic_user, password=s.rithmic_password.value, system_name=s.rithmic_system_name,
                         app_name=s.rithmic_app_name, app_version=s.rithmic_app_version, url=s.rithmic_url,
                         ca_file=s.rithmic_ca_file, max_reconnect_delay=s.max_reconnect_delay_s)
    reached: list[str] = []

    async def plant_logged_in(plant_type: str) -> None:
        reached.append(plant_type)

    client.on_connected += plant_logged_in
    for plant in (client.plants["ticker"], client.plants["history"]):
        guard_login(plant)
    app, version = app_presented(client)
    print(f"presenting application name '{app}' version '{version}' as user {s.rithmic_user}")
    try:
        # 1. system names, on a connection of its own, as the gateway expects
        systems = await gateway_systems(client, s.connect_timeout_s)
        print(f"gateway {s.rithmic_url} offers: {', '.join(systems)}")
        if not s.rithmic_system_name:
            print(f"FAIL: RITHMIC_SYSTEM_NAME is not set (only Rithmic's test gateway has a default); set it to one "
                  f"of: {', '.join(systems)}")
            return 1
        if s.rithmic_system_name not in systems:
            print(f"FAIL: unknown system name '{s.rithmic_system_name}'; set RITHMIC_SYSTEM_NAME to one of: "
                  f"{', '.join(systems)}")
            return 1
        # 2. login
        await asyncio.wait_for(client.connect(plants=TICKER_AND_HISTORY), timeout=s.connect_timeout_s)
        print(f"login OK as {s.rithmic_user} on '{s.rithmic_system_name}'")
        print(f"plants reached: {', '.join(reached)}")
        print("heartbeat interval (the gateway's): "
              + ", ".join(f"{p} {heartbeat_interval(client.plants[p]):g} s" for p in reached))
        # 3. front month
        product = PRODUCTS.get(product_code.upper())
        exchange = product.exchange if product else "CME"
        front = await asyncio.wait_for(client.get_front_month_contract(product_code.upper(), exchange), timeout=15)
        print(f"front month of {product_code.upper()} on {exchange}: {front}")
        return 0
    except Exception as exc:
        print("FAIL: " + explain(exc, s))
        print(f"plants reached: {', '.join(reached) or 'none'}")
        return 1
    finally:
        await client.disconnect(timeout=2)
