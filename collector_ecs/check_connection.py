"""`python -m collector_ecs check-connection`: the old test_connection.py, with answers a
person can act on (permission denied, unknown system name, timeouts, TLS)."""

from __future__ import annotations

import asyncio
import ssl

import websockets
from async_rithmic.exceptions import RithmicErrorResponse

from rdc_common.products import PRODUCTS

from .config import Settings
from .rithmic_internals import TICKER_AND_HISTORY, guard_login, make_client
from .session import is_permission_denied


def explain(exc: BaseException, settings: Settings) -> str:
    """One plain-English sentence for a failure to reach or log in to the gateway."""
    text = str(exc)
    if is_permission_denied(exc):
        return ("permission denied (Rithmic code 13): check RITHMIC_USER and RITHMIC_PASSWORD, and that the "
                "account is approved for API access on this system")
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
    ticker = client.plants["ticker"]
    for plant in (ticker, client.plants["history"]):
        guard_login(plant)
    try:
        # 1. system names, on a connection of its own, as the gateway expects
        ticker.ws = await asyncio.wait_for(
            websockets.connect(s.rithmic_url, ssl=client.ssl_context), timeout=s.connect_timeout_s)
        info = await asyncio.wait_for(ticker.get_system_info(), timeout=s.connect_timeout_s)
        await ticker.ws.close()
        systems = list(info.system_name)
        print(f"gateway {s.rithmic_url} offers: {', '.join(systems)}")
        if s.rithmic_system_name not in systems:
            print(f"FAIL: unknown system name '{s.rithmic_system_name}'; set RITHMIC_SYSTEM_NAME to one of: "
                  f"{', '.join(systems)}")
            return 1
        # 2. login
        await asyncio.wait_for(client.connect(plants=TICKER_AND_HISTORY), timeout=s.connect_timeout_s)
        print(f"login OK as {s.rithmic_user} on '{s.rithmic_system_name}'")
        # 3. front month
        product = PRODUCTS.get(product_code.upper())
        exchange = product.exchange if product else "CME"
        front = await asyncio.wait_for(client.get_front_month_contract(product_code.upper(), exchange), timeout=15)
        print(f"front month of {product_code.upper()} on {exchange}: {front}")
        return 0
    except Exception as exc:
        print("FAIL: " + explain(exc, s))
        return 1
    finally:
        await client.disconnect(timeout=2)
