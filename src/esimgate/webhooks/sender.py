"""One webhook delivery attempt: POST the signed body to the checked address.

The request goes to the address the SSRF guard approved (never to the name again, so DNS
rebinding cannot redirect it), with the original ``Host`` header and, for https, the original name
as TLS SNI / certificate hostname. Redirects are never followed, the whole attempt is bounded by
``timeout``, the receiver's body is read (at most 64 KiB) and dropped, and failures of any kind come
back as an ``Attempt`` instead of an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from esimgate.webhooks.ssrf import Target

MAX_RESPONSE_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 200


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def request_url(target: Target) -> str:
    """The target URL with its host replaced by the first checked address."""
    parts = urlsplit(target.url)
    address = target.addresses[0]
    ip = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{target.scheme}://{ip}:{target.port}{path}{query}"


def host_header(target: Target) -> str:
    host = _host_for_url(target.host)
    if target.port == _default_port(target.scheme):
        return host
    return f"{host}:{target.port}"


def _short(exc: BaseException) -> str:
    detail = str(exc).strip()
    text = type(exc).__name__ + (f": {detail}" if detail else "")
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed: " + _short(exc)
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error: " + _short(exc)
    if isinstance(exc, httpx.HTTPError):
        return "request failed: " + _short(exc)
    return "unexpected error: " + _short(exc)


async def _post(
    client: httpx.AsyncClient,
    target: Target,
    body: bytes,
    headers: dict[str, str],
    budget: float,
) -> int:
    sent = {k: v for k, v in headers.items() if k.lower() != "host"}
    sent["Host"] = host_header(target)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    request = client.build_request(
        "POST",
        request_url(target),
        content=body,
        headers=sent,
        extensions=extensions,
        timeout=httpx.Timeout(budget),
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= MAX_RESPONSE_BYTES:
                break  # the receiver's body is never kept; stop reading early
    finally:
        await response.aclose()
    return response.status_code


async def send(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,  # noqa: ASYNC109 - the per-attempt budget, enforced with asyncio.timeout
    client: httpx.AsyncClient | None = None,
) -> Attempt:
    """Make one delivery attempt; never raises (except on cancellation)."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    own_client = client is None
    http = client or httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout)
    )
    try:
        async with asyncio.timeout(timeout):
            status = await _post(http, target, body, headers, timeout)
    except Exception as exc:
        return Attempt(status_code=None, error=_describe(exc, timeout), duration_ms=elapsed())
    finally:
        if own_client:
            await http.aclose()
    if 200 <= status < 300:
        return Attempt(status_code=status, error=None, duration_ms=elapsed())
    if 300 <= status < 400:
        return Attempt(
            status_code=status, error="redirect not followed (3xx)", duration_ms=elapsed()
        )
    return Attempt(status_code=status, error=f"HTTP {status}", duration_ms=elapsed())
