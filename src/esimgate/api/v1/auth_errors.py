"""The errors every authenticated endpoint can answer with, for OpenAPI."""

from esimgate.api.errors import documented
from esimgate.auth.errors import (
    AuthenticationRequired,
    DuplicateRequest,
    HmacRequired,
    InvalidApiKey,
    InvalidRequestId,
    InvalidSignature,
    InvalidTimestamp,
    InvalidToken,
    InvalidUser,
    IpNotAllowed,
)
from esimgate.errors import ApiError, InvalidParameter, RateLimitExceeded

AUTH_ERROR_TYPES: tuple[type[ApiError], ...] = (
    AuthenticationRequired,
    HmacRequired,
    InvalidApiKey,
    InvalidSignature,
    InvalidTimestamp,
    InvalidRequestId,
    DuplicateRequest,
    InvalidToken,
    InvalidUser,
    IpNotAllowed,
    RateLimitExceeded,
)
AUTH_ERRORS = documented(*AUTH_ERROR_TYPES)
AUTH_AND_PARAMETER_ERRORS = documented(*AUTH_ERROR_TYPES, InvalidParameter)
