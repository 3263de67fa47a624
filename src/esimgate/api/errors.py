"""Rendering every error into the spec's envelope, and documenting it in OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from esimgate.errors import ApiError, InvalidParameter

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The error envelope: a human message, a stable code, optional detail."""

    success: bool = False
    error: str
    code: str
    message: str | None = None
    details: dict[str, Any] | None = None


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _parameter_name(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")]
    return ".".join(location) or "request"


def _envelope(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None
) -> JSONResponse:
    """An error body as v1 renders it; under ``/api/v3/`` the v3 dialect's envelope instead,
    with the same code and message."""
    if request.url.path.startswith("/api/v3/"):
        from esimgate.api.v3 import v3_error_body

        now = request.app.state.runtime.clock.now()
        body = v3_error_body(body["code"], body["error"], status, now)
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _envelope(request, exc.status, exc.body(), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation, as ``400 INVALID_PARAMETER`` naming the parameters, in the
    envelope of the API that was called (v1 or the v3 dialect)."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    names = sorted({_parameter_name(p) for p in problems}) or ["request"]
    first = problems[0] if problems else {}
    error = InvalidParameter(
        f"Invalid parameter: {', '.join(names)}",
        detail=f"{names[0]}: {first.get('msg', 'invalid value')}",
        details={"parameters": names},
    )
    return _envelope(request, error.status, error.body(), None)


# FastAPI answers a body it cannot decode (not UTF-8) with a bare 400: a malformed parameter.
_HTTP_CODES = {
    400: "INVALID_PARAMETER",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    body: dict[str, Any] = {"success": False, "error": str(exc.detail), "code": code}
    return _envelope(request, exc.status_code, body, getattr(exc, "headers", None))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        {"success": False, "error": "Internal server error", "code": "INTERNAL_ERROR"},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def _example(error: type[ApiError]) -> dict[str, Any]:
    return {"success": False, "error": error.default_message, "code": error.code}


def documented(
    *errors: type[ApiError],
    model: type[BaseModel] = ErrorBody,
    example: Callable[[type[ApiError]], dict[str, Any]] = _example,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given errors, grouped by status with their codes; ``model``
    and ``example`` describe the envelope (the v3 dialect has its own)."""
    by_status: dict[int, list[type[ApiError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        responses[status] = {
            "model": model,
            "description": " | ".join(f"`{e.code}`: {e.default_message}" for e in group),
            "content": {
                "application/json": {"examples": {e.code: {"value": example(e)} for e in group}}
            },
        }
    return responses
