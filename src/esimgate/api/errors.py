"""Rendering every error into the spec's envelope, and documenting it in OpenAPI."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from esimgate.errors import ApiError

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


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if request.url.path.startswith("/api/v3/"):
        from esimgate.api.v3 import v3_error_body

        now = request.app.state.runtime.clock.now()
        body = v3_error_body(exc.code, exc.message, exc.status, now)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    names = sorted({_parameter_name(p) for p in problems})
    first = problems[0] if problems else {}
    detail = f"{names[0]}: {first.get('msg', 'invalid value')}" if names else None
    return JSONResponse(
        {
            "success": False,
            "error": f"Invalid parameter: {', '.join(names)}",
            "code": "INVALID_PARAMETER",
            "message": detail,
            "details": {"parameters": names},
        },
        status_code=400,
    )


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {
            "success": False,
            "error": str(exc.detail),
            "code": _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"),
        },
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


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


def documented(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given errors, grouped by status with their codes."""
    by_status: dict[int, list[type[ApiError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        responses[status] = {
            "model": ErrorBody,
            "description": " | ".join(f"`{e.code}`: {e.default_message}" for e in group),
            "content": {
                "application/json": {
                    "examples": {
                        e.code: {
                            "value": {"success": False, "error": e.default_message, "code": e.code}
                        }
                        for e in group
                    }
                }
            },
        }
    return responses
