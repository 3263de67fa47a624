"""GET /balance through HTTP, signed the way the seed documents' Node.js client signs."""

from __future__ import annotations

from tests.support import SignedClient


async def test_balance_of_a_signed_request(api: SignedClient) -> None:
    response = await api.get("/api/v1/business/balance")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "data": {"balance": 1500.0, "currency": "USD"}}
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.headers["X-RateLimit-Remaining"] == "999"
