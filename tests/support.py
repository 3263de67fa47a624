"""Test helpers: a signing client that follows the seed documents' Node.js example."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from esimgate.auth.signature import sign


@dataclass(frozen=True)
class Credentials:
    account_id: int
    access_code: str
    secret_key: str


def hmac_headers(
    creds: Credentials,
    body: bytes = b"",
    *,
    timestamp_ms: int | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """The four RT-* headers, signed over timestamp + request id + access code + raw body."""
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    rid = request_id or str(uuid.uuid4())
    return {
        "RT-AccessCode": creds.access_code,
        "RT-RequestID": rid,
        "RT-Timestamp": timestamp,
        "RT-Signature": sign(creds.secret_key, timestamp, rid, creds.access_code, body),
    }


class SignedClient:
    """Sends HMAC-signed requests for one API key, a fresh request id each time."""

    def __init__(self, client: httpx.AsyncClient, creds: Credentials, clock_ms: Any) -> None:
        self.client = client
        self.creds = creds
        self.clock_ms = clock_ms  # () -> int, the server clock the test controls

    def headers(self, body: bytes = b"", **overrides: Any) -> dict[str, str]:
        overrides.setdefault("timestamp_ms", self.clock_ms())
        return hmac_headers(self.creds, body, **overrides)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.headers(), **kwargs)

    async def post(self, path: str, payload: Any = None, **overrides: Any) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = self.headers(body, **overrides)
        headers["Content-Type"] = "application/json"
        return await self.client.post(path, content=body, headers=headers)
