"""Authentication errors, exactly as the error catalogue names them."""

from __future__ import annotations

from esimgate.errors import ApiError


class AuthenticationRequired(ApiError):
    status = 401
    code = "AUTHENTICATION_REQUIRED"
    default_message = "Authentication required"

    def __init__(self) -> None:
        super().__init__(
            detail="Please provide either Bearer token or complete HMAC signature authentication"
        )


class HmacRequired(ApiError):
    status = 401
    code = "HMAC_REQUIRED"
    default_message = "Incomplete HMAC signature authentication"


class InvalidApiKey(ApiError):
    status = 401
    code = "INVALID_API_KEY"
    default_message = "Invalid API key"


class InvalidSignature(ApiError):
    status = 401
    code = "INVALID_SIGNATURE"
    default_message = "HMAC signature verification failed"


class InvalidTimestamp(ApiError):
    status = 401
    code = "INVALID_TIMESTAMP"
    default_message = "Request timestamp is invalid or outside the allowed window"


class InvalidRequestId(ApiError):
    status = 400
    code = "INVALID_REQUEST_ID"
    default_message = "Invalid or missing RT-RequestID header. Must be a valid UUID v4."


class DuplicateRequest(ApiError):
    status = 409
    code = "DUPLICATE_REQUEST"
    default_message = "Request ID has already been used"


class InvalidToken(ApiError):
    status = 401
    code = "INVALID_TOKEN"
    default_message = "Invalid or expired bearer token"


class InvalidUser(ApiError):
    status = 403
    code = "INVALID_USER"
    default_message = "Invalid user or not a business account"


class IpNotAllowed(ApiError):
    status = 403
    code = "IP_NOT_ALLOWED"
    default_message = "This API key may not be used from this address"
