"""The API's own Chalice middleware and the view wrapper every route uses.

`request_context` gives each request an id (in every log line and error body), binds the request
to its thread, turns every failure into the one error shape and logs one line per request.
`guard` applies the API key rules and the body size limit before any view runs.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable

from chalice import Response
from chalice.app import Request

from . import context
from .auth import authorize
from .config import ConfigError, get_settings
from .errors import CHALICE_CODES, ApiError, PayloadTooLarge, Unexpected, error_response
from .observability import MetricUnit, logger, metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_INTERNAL = "the request failed on our side; quote the request_id when reporting it"


def api_view(view: Callable) -> Callable:
    """Let an ApiError through as is and wrap anything else, so our middleware (not Chalice's
    default handler) logs it with the request id and answers in the API's error shape."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ApiError:
            raise
        except Exception as exc:
            raise Unexpected(type(exc).__name__) from exc

    wrapper.rdc_api_view = True
    return wrapper


def _request_id(request: Request) -> str:
    # API Gateway's id is the one its access logs and x-amzn-RequestId show; locally NGINX may
    # send its own in X-Request-Id.
    rid = (request.context or {}).get("requestId")
    if rid and _REQUEST_ID.match(rid):
        return rid
    rid = request.headers.get("x-request-id")
    if rid and _REQUEST_ID.match(rid):
        return rid
    return uuid.uuid4().hex


def _route(request: Request) -> str:
    return (request.context or {}).get("resourcePath") or "-"


def _normalise(response: Response, rid: str) -> Response:
    """Chalice's own errors (405, 415, ...) come as {"Code", "Message"}: give them our shape."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body and "error" not in body:
        title = CHALICE_CODES.get(str(body.get("Code")), "Error")
        message = str(body.get("Message", ""))
        if response.status_code >= 500:
            message = _INTERNAL
        elif response.status_code == 405:
            allowed = response.headers.get("Allow", "")
            message = f"{message}; this route accepts {allowed}" if allowed else message
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        return error_response(response.status_code, title, message, rid, headers)
    return response


def request_context(event: Request, get_response: Callable[[Request], Response]) -> Response:
    started = time.perf_counter()
    rid = _request_id(event)
    context.bind(event, rid)
    logger.thread_safe_append_keys(request_id=rid)
    try:
        try:
            response = get_response(event)
        except ApiError as exc:
            if exc.status >= 500:
                logger.warning(exc.title, extra={"detail": exc.detail})
                metrics.add_metric(name="ServiceUnavailable", unit=MetricUnit.Count, value=1)
            response = error_response(exc.status, exc.title, exc.message, rid, exc.headers)
        except Unexpected:
            logger.exception("unhandled error")
            metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
            response = error_response(500, "Internal error", _INTERNAL, rid)
        response = _normalise(response, rid)
        response.headers.setdefault("Content-Type", "application/json")
        response.headers["X-Request-Id"] = rid
        logger.info("request", extra={
            "method": event.method, "route": _route(event), "path": (event.context or {}).get("path"),
            "status": response.status_code, "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        })
        return response
    finally:
        logger.thread_safe_remove_keys(["request_id"])
        context.unbind()


def guard(event: Request, get_response: Callable[[Request], Response]) -> Response:
    try:
        settings = get_settings()
    except ConfigError as exc:
        logger.error("bad configuration", extra={"error": str(exc)})
        raise ApiError("the API is misconfigured; the operator must fix its settings",
                       title="Server misconfigured") from None
    authorize(settings, _route(event), event.method, event.headers)
    if len(event.raw_body or b"") > settings.max_body_bytes:
        raise PayloadTooLarge(f"request bodies are limited to {settings.max_body_bytes} bytes; this API takes "
                              f"at most {{\"exchange\": \"COMEX\"}}")
    return get_response(event)
