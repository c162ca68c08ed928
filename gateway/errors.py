"""The one exception tree of wagate; every HTTP error response is mapped from it in one place.

    WagateError
    ├── ConfigError                  bad setting (CLI: one line, exit 2)
    ├── StoreError                   the database failed or is in an unexpected state
    ├── ApiError                     a client-facing error with an HTTP status and a stable code
    │   ├── BadRequest          400  bad JSON, missing or malformed field
    │   ├── Unauthorized        401  missing or unknown credential
    │   ├── Forbidden           403  authenticated but not allowed
    │   ├── NotFound            404  unknown, deleted, or another partner's resource
    │   ├── MethodNotAllowed    405
    │   ├── Conflict            409  the resource is not in a state that allows this
    │   ├── PayloadTooLarge     413
    │   ├── Unprocessable       422  well-formed but invalid (e.g. a phone number)
    │   ├── TooManyRequests     429  a rate limit (with Retry-After)
    │   ├── HeadersTooLarge     431  too many or too large request headers
    │   └── ServiceUnavailable  503  shutting down, or the driver cannot take work now
    └── DriverError                  a WhatsApp driver failed (sessions.drivers.base)
        ├── DriverNotReady           cannot connect now; the supervisor retries with backoff
        ├── NotConnected             the session is not connected
        ├── SendFailed               WhatsApp refused or did not acknowledge a message
        └── PairingError             pairing code or QR flow failed
"""

from __future__ import annotations

from typing import Any


class WagateError(Exception):
    """Root of every error wagate raises on purpose."""


class ConfigError(WagateError):
    """A setting is missing or invalid; the message names it."""


class StoreError(WagateError):
    """The store failed."""


class ApiError(WagateError):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, **self.extra}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)


class HeadersTooLarge(ApiError):
    status = 431
    code = "headers_too_large"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


class DriverError(WagateError):
    """A WhatsApp driver failed; `reason` is short and safe to show to the partner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DriverNotReady(DriverError):
    """The session cannot connect right now (network, upstream); retry later."""


class NotConnected(DriverError):
    """The session is not connected to WhatsApp."""


class SendFailed(DriverError):
    """WhatsApp refused or did not acknowledge a message."""


class PairingError(DriverError):
    """Linking by QR or pairing code failed."""
