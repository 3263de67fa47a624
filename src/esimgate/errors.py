"""One error base class carrying its HTTP status and API code, rendered by one handler."""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error a client sees: status, code, human message, optional detail."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    default_message: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": False, "error": self.message, "code": self.code}
        if self.detail is not None:
            out["message"] = self.detail
        if self.details is not None:
            out["details"] = self.details
        return out


class InvalidParameter(ApiError):
    status = 400
    code = "INVALID_PARAMETER"
    default_message = "Invalid parameter"


class MissingFields(ApiError):
    status = 400
    code = "MISSING_FIELDS"
    default_message = "Required fields are missing"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class RateLimitExceeded(ApiError):
    status = 429
    code = "RATE_LIMIT_EXCEEDED"
    default_message = "Rate limit exceeded"


class ServiceUnavailable(ApiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable"


class ProviderUnavailable(ApiError):
    status = 502
    code = "PROVIDER_ERROR"
    default_message = "The upstream provider could not be reached"
