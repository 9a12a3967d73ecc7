"""Errors a request can end in, and the one JSON shape every error response has.

`{"error": "<short title>", "message": "<what to do about it>", "request_id": "..."}`: never a
stack trace, SQL, a password or a connection string.
"""

from __future__ import annotations

from chalice import Response
from chalice.app import ChaliceUnhandledError


class ApiError(ChaliceUnhandledError):
    """An error answered with its status, title and message.

    A ChaliceUnhandledError, so Chalice lets it through to our middleware instead of turning it
    into its own 500.
    """

    status = 500
    title = "Internal error"

    def __init__(self, message: str, *, title: str | None = None, headers: dict[str, str] | None = None,
                 detail: str | None = None):
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.detail = detail  # for the log line only, never sent


class BadRequest(ApiError):
    status = 400
    title = "Bad request"


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not found"


class Conflict(ApiError):
    """A well-formed request that contradicts what is stored (it would be fine against other state)."""

    status = 409
    title = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Payload too large"


class ServiceUnavailable(ApiError):
    """A dependency is down or too slow: worth retrying, and Retry-After says when (clients back off)."""

    status = 503
    title = "Service unavailable"
    retry_after_s = 2

    def __init__(self, message: str, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(self.retry_after_s))


class DatabaseUnavailable(ServiceUnavailable):
    title = "Database unavailable"


class QueryTimeout(ServiceUnavailable):
    title = "Query timeout"


class Unexpected(ChaliceUnhandledError):
    """Wraps an exception no code expected, so the middleware logs it (with the request id) and
    answers a plain 500."""


# Titles for errors Chalice itself produces (405, 415, its own 400s), keyed by its error code.
CHALICE_CODES = {
    "BadRequestError": "Bad request",
    "BadRequest": "Bad request",
    "UnauthorizedError": "Unauthorized",
    "ForbiddenError": "Forbidden",
    "NotFoundError": "Not found",
    "MethodNotAllowedError": "Method not allowed",
    "UnsupportedMediaType": "Unsupported media type",
    "RequestTimeoutError": "Request timeout",
    "ConflictError": "Conflict",
    "UnprocessableEntityError": "Unprocessable entity",
    "TooManyRequestsError": "Too many requests",
    "InternalServerError": "Internal error",
}


def error_response(status: int, title: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(
        body={"error": title, "message": message, "request_id": request_id},
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
