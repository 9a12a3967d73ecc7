"""The request being served on this thread.

`chalice local` serves each request on its own thread while `app.current_request` is one
attribute shared by all of them, so views read the request from here instead.
"""

from __future__ import annotations

import threading

from chalice.app import Request

_local = threading.local()


def bind(request: Request, request_id: str) -> None:
    _local.request = request
    _local.request_id = request_id


def unbind() -> None:
    _local.request = None
    _local.request_id = None


def current_request() -> Request:
    request = getattr(_local, "request", None)
    if request is None:
        raise RuntimeError("no request is bound to this thread")
    return request


def request_id() -> str:
    return getattr(_local, "request_id", None) or "-"
