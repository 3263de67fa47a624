"""QR images of install payloads, at stable unguessable URLs (the token is the capability)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from sqlalchemy import select

from esimgate.api.deps import SessionDep
from esimgate.api.errors import documented
from esimgate.api.text import NO_NUL
from esimgate.errors import InvalidParameter, NotFound
from esimgate.esims.install import qr_png, qr_svg
from esimgate.esims.models import Esim

router = APIRouter(tags=["Install"])

MEDIA = {"png": "image/png", "svg": "image/svg+xml"}


IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The QR image",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/qr/{token}.{fmt}",
    response_class=Response,
    responses=IMAGE_RESPONSE | documented(InvalidParameter, NotFound),
)
async def qr_image(
    token: Annotated[str, Path(pattern=NO_NUL)], fmt: Literal["png", "svg"], session: SessionDep
) -> Response:
    """The QR code of an eSIM's LPA activation code, as PNG or SVG."""
    lpa = await session.scalar(select(Esim.lpa).where(Esim.qr_token == token))
    if lpa is None:
        raise NotFound("QR code not found")
    image = qr_png(lpa) if fmt == "png" else qr_svg(lpa)
    return Response(
        image,
        media_type=MEDIA[fmt],
        headers={
            # The content behind a token never changes; private: it is an install credential.
            "Cache-Control": "private, max-age=31536000, immutable",
            "ETag": f'"{token}-{fmt}"',
        },
    )
