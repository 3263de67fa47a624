"""Probes, the OpenAPI document, and the JSON shape of routing errors (404, 405)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from esimgate.app import create_app
from esimgate.clock import FrozenClock
from esimgate.config import Settings
from esimgate.runtime import Runtime, build_runtime

BUSINESS = "/api/v1/business"

# The error codes each signed endpoint must document, by status.
SIGNED_ENDPOINT_ERRORS = {
    "400": {"INVALID_REQUEST_ID"},
    "401": {
        "AUTHENTICATION_REQUIRED",
        "HMAC_REQUIRED",
        "INVALID_API_KEY",
        "INVALID_SIGNATURE",
        "INVALID_TIMESTAMP",
        "INVALID_TOKEN",
    },
    "403": {"INVALID_USER"},
    "409": {"DUPLICATE_REQUEST"},
    "429": {"RATE_LIMIT_EXCEEDED"},
}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def assert_documents(operation: dict[str, Any], errors: dict[str, set[str]]) -> None:
    responses = operation["responses"]
    for status, codes in errors.items():
        assert status in responses, (status, sorted(responses))
        description = responses[status]["description"]
        for code in codes:
            assert f"`{code}`" in description, (status, code, description)
        examples = responses[status]["content"]["application/json"]["examples"]
        assert codes <= set(examples), (status, sorted(examples))


# --- probes -------------------------------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database_and_redis_when_configured(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    expected = {"database": "ok"} | ({"redis": "ok"} if settings.redis_url else {})
    assert response.json() == {"status": "ready", "checks": expected}


async def test_readyz_is_503_when_redis_does_not_answer(
    settings: Settings, clock: FrozenClock
) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    runtime: Runtime = build_runtime(broken, clock)
    try:
        app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as http:
            response = await http.get("/readyz")
    finally:
        await runtime.aclose()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not ready", body
    assert body["checks"]["database"] == "ok", body
    assert body["checks"]["redis"].startswith("error: "), body


# --- OpenAPI ------------------------------------------------------------------------------------


async def test_openapi_lists_the_business_endpoints(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    assert {"get"} <= set(paths[f"{BUSINESS}/balance"])
    assert {"get"} <= set(paths[f"{BUSINESS}/esims/packages"])
    assert {"post"} <= set(paths[f"{BUSINESS}/auth/token"])
    assert {"get"} <= set(paths["/healthz"]) and {"get"} <= set(paths["/readyz"])


async def test_openapi_documents_the_errors_of_signed_endpoints(openapi: dict[str, Any]) -> None:
    assert_documents(openapi["paths"][f"{BUSINESS}/balance"]["get"], SIGNED_ENDPOINT_ERRORS)
    packages = openapi["paths"][f"{BUSINESS}/esims/packages"]["get"]
    assert_documents(
        packages,
        SIGNED_ENDPOINT_ERRORS | {"400": {"INVALID_REQUEST_ID", "INVALID_PARAMETER"}},
    )
    parameters = {p["name"]: p for p in packages["parameters"]}
    assert set(parameters) == {"search", "type", "page", "limit"}
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["limit"]["schema"]["default"] == 50
    assert parameters["page"]["schema"]["minimum"] == 1


async def test_openapi_documents_the_errors_of_the_token_endpoint(
    openapi: dict[str, Any],
) -> None:
    assert_documents(
        openapi["paths"][f"{BUSINESS}/auth/token"]["post"],
        {
            "400": {"INVALID_PARAMETER"},
            "401": {"INVALID_API_KEY"},
            "403": {"INVALID_USER"},
            "429": {"RATE_LIMIT_EXCEEDED"},
        },
    )


async def test_openapi_does_not_document_a_422_that_never_happens(
    openapi: dict[str, Any],
) -> None:
    """Validation errors are 400 INVALID_PARAMETER; a 422 is only IDEMPOTENCY_KEY_REUSED."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            unprocessable = operation["responses"].get("422")
            if unprocessable is not None:
                assert "IDEMPOTENCY_KEY_REUSED" in unprocessable["description"], (method, path)
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


async def test_docs_serve_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


# --- routing errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", f"{BUSINESS}/nope", f"{BUSINESS}/esims/packages/x"])
async def test_unknown_path_is_a_json_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False, body
    assert body["code"] == "NOT_FOUND", body
    assert isinstance(body["error"], str) and body["error"], body


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", f"{BUSINESS}/balance", "GET"),
        ("DELETE", f"{BUSINESS}/esims/packages", "GET"),
        ("GET", f"{BUSINESS}/auth/token", "POST"),
        ("PUT", "/healthz", "GET"),
    ],
)
async def test_wrong_method_is_a_json_405(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False, body
    assert body["code"] == "METHOD_NOT_ALLOWED", body
    assert allowed in response.headers["allow"]
