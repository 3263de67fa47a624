"""HTTP details every upstream client shares: reading a bounded body, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from esimgate.providers.base import TechnicalError


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
