"""The one exception the client raises: what the API (or the proxy in front of it) answered."""

from __future__ import annotations

import httpx


class RdcApiError(Exception):
    """An answer the client could not turn into data, after any retries.

    Attributes:
        status: the HTTP status (None when no answer came: the connection failed).
        error: the API's short title, e.g. ``Invalid API key``.
        message: the API's sentence saying what to do about it.
        request_id: the API's id for the request (quote it when reporting a problem); None when
            the answer came from NGINX itself or no answer came.
        method, url: the request that failed.
    """

    def __init__(self, status: int | None, error: str, message: str, request_id: str | None, method: str,
                 url: str) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.request_id = request_id
        self.method = method
        self.url = url
        where = f"{method} {url}"
        head = f"{status} {error}" if status is not None else error
        tail = f" (request_id {request_id})" if request_id else ""
        super().__init__(f"{head}: {message}{tail} [{where}]")

    @classmethod
    def from_response(cls, response: httpx.Response, extra: str | None = None) -> RdcApiError:
        """From an error answer: the API's {"error", "message", "request_id"} when it is that shape,
        otherwise the status's reason and the start of the body."""
        error, message, request_id = response.reason_phrase or "Error", "", None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            error = str(body.get("error") or error)
            message = body["message"]
            request_id = body.get("request_id") if isinstance(body.get("request_id"), str) else None
        else:
            message = response.text[:200].strip() or f"HTTP {response.status_code}"
        request_id = request_id or response.headers.get("x-request-id")
        if extra:
            message = f"{message}; {extra}" if message else extra
        return cls(response.status_code, error, message, request_id, response.request.method,
                   str(response.request.url))
