"""API keys: which requests need one, and whether the one sent is valid.

Keys come from API_KEYS (comma-separated) or, in AWS, from the Secrets Manager secret named by
API_KEYS_SECRET_ARN (a JSON object {name: key}, as the CDK stack creates it). A key is compared
in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json

from .config import Settings
from .db import read_secret
from .errors import Forbidden, Unauthorized
from .static import PUBLIC_ROUTES

HEADER = "x-api-key"
# /health for load balancers; the pages, because a browser cannot send a key for a page load (the
# page itself asks for one before it calls a keyed route).
OPEN_ROUTES = frozenset(("/health", *PUBLIC_ROUTES))
WRITE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def parse_keys(raw: object) -> tuple[str, ...]:
    """Keys from a secret's value: a JSON object (its values), a JSON list, or comma-separated text."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text[:1] in "{[" and text else text
        except ValueError:
            raw = text
    if isinstance(raw, dict):
        values = raw.values()
    elif isinstance(raw, list):
        values = raw
    elif isinstance(raw, str):
        values = raw.split(",")
    else:
        values = []
    return tuple(v.strip() for v in values if isinstance(v, str) and v.strip())


def configured_keys(settings: Settings) -> tuple[str, ...]:
    keys = settings.api_keys
    if settings.api_keys_secret_arn:
        keys = keys + parse_keys(read_secret(settings.api_keys_secret_arn, settings.secret_max_age_s))
    return keys


def key_matches(provided: str, keys: tuple[str, ...]) -> bool:
    """Compare against every key without stopping early, so timing says nothing about which matched."""
    given = provided.encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode("utf-8"))
    return matched


def authorize(settings: Settings, route: str, method: str, headers) -> None:
    """Raise Unauthorized/Forbidden unless this request may proceed."""
    if route in OPEN_ROUTES:
        return
    keys = configured_keys(settings) if settings.api_keys_configured else ()
    if settings.api_keys_configured and not keys:
        # Keys were meant to be configured but none could be read: fail closed.
        raise Forbidden("no API key is valid on this deployment (the configured key list is empty); "
                        "ask the operator", title="Invalid API key")
    if not keys:
        if settings.require_api_key_for_writes and method in WRITE_METHODS:
            raise Forbidden("subscribe and unsubscribe need an API key and none is configured on this "
                            "deployment: the operator must set API_KEYS (or API_KEYS_SECRET_ARN)",
                            title="API keys not configured")
        return
    provided = headers.get(HEADER)
    if not provided:
        raise Unauthorized(f"this API needs a key: send it in the {HEADER} header", title="Missing API key")
    if not key_matches(provided, keys):
        raise Forbidden(f"the {HEADER} header does not hold a valid API key", title="Invalid API key")
