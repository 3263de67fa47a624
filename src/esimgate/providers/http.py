"""HTTP details every upstream client shares: one exchange with transport failures classified,
a bounded body, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from esimgate.providers.base import TechnicalError

# Failures before any byte of the request left: the upstream surely did nothing.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


async def exchange(
    http: httpx.AsyncClient, request: httpx.Request, *, limit: int, provider: str, what: str
) -> tuple[httpx.Response, bytes]:
    """Send ``request`` (never following redirects) and read at most ``limit`` bytes of the
    answer. Transport failures become :class:`TechnicalError`: ``committed=False`` only when the
    request surely never left (no connection), ``None`` otherwise (it may have been acted on).
    The response is closed; its status and headers stay readable."""
    try:
        response = await http.send(request, stream=True, follow_redirects=False)
    except NOT_SENT as exc:
        raise TechnicalError(
            f"{what}: cannot connect: {exc!r}", provider=provider, committed=False
        ) from exc
    except httpx.HTTPError as exc:  # read/write timeouts, protocol errors: maybe sent
        raise TechnicalError(f"{what}: transport error: {exc!r}", provider=provider) from exc
    try:
        body = await read_capped(response, limit, provider=provider, what=what)
    except httpx.HTTPError as exc:
        raise TechnicalError(f"{what}: transport error: {exc!r}", provider=provider) from exc
    finally:
        await response.aclose()
    return response, body


async def read_capped(response: httpx.Response, limit: int, *, provider: str, what: str) -> bytes:
    """The (decoded) body of a streamed response, refusing more than ``limit`` bytes, so a
    broken or hostile upstream cannot exhaust memory. Transport errors propagate."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TechnicalError(
            f"{what}: response body too large ({declared} bytes)", provider=provider
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise TechnicalError(
                f"{what}: response body larger than {limit} bytes", provider=provider
            )
    return bytes(body)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
