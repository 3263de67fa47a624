"""Order and top-up errors, as the error catalogue names them."""

from __future__ import annotations

from esimgate.errors import ApiError


class InvalidPackage(ApiError):
    status = 400
    code = "INVALID_PACKAGE"
    default_message = "Package code is invalid"


class PriceMismatch(ApiError):
    status = 400
    code = "PRICE_MISMATCH"
    default_message = "Submitted price doesn't match package price"


class InsufficientBalance(ApiError):
    status = 400
    code = "INSUFFICIENT_BALANCE"
    default_message = "Account balance is too low"


class IdempotencyKeyReused(ApiError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This idempotency key was used with a different request body"


class OrderNotFound(ApiError):
    status = 404
    code = "ORDER_NOT_FOUND"
    default_message = "Order reference not found"


class EsimNotFound(ApiError):
    status = 404
    code = "ESIM_NOT_FOUND"
    default_message = "eSIM not found"


class EsimNotToppable(ApiError):
    status = 400
    code = "ESIM_NOT_TOPPABLE"
    default_message = "eSIM cannot be topped up in its current status"


class InvalidTopupPackage(ApiError):
    status = 400
    code = "INVALID_TOPUP_PACKAGE"
    default_message = "Top-up package is invalid or not compatible with this eSIM"


class TopupNotSupported(ApiError):
    status = 400
    code = "TOPUP_NOT_SUPPORTED"
    default_message = "Top-ups are not available for this eSIM"


class MissingIdentifier(ApiError):
    status = 400
    code = "MISSING_IDENTIFIER"
    default_message = "Provide either iccid or esimId"


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"
    default_message = "You do not have permission to access this eSIM"


class AlreadyCancelled(ApiError):
    status = 400
    code = "ALREADY_CANCELLED"
    default_message = "This order's eSIMs are already cancelled"


class NotEligible(ApiError):
    status = 400
    code = "NOT_ELIGIBLE"
    default_message = "No eSIM of this order can be cancelled"
