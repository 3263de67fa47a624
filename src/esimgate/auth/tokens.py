"""Bearer tokens: short-lived HS256 JWTs naming an API key, with fixed algorithm and claims."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub"]


class TokenError(ValueError):
    """The token is not one we issued, or no longer valid."""


class TokenIssuer:
    def __init__(self, key: bytes, issuer: str, audience: str, ttl: timedelta) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def issue(self, subject: str, now: datetime, *, audience: str | None = None) -> str:
        claims = {
            "sub": subject,
            "iss": self.issuer,
            "aud": audience or self.audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, now: datetime, *, audience: str | None = None) -> str:
        """The token's subject; raises TokenError for anything else."""
        try:
            # The algorithm list is fixed: a token's own header never chooses it (no "none",
            # no RS/HS confusion). Time is checked against our clock, not the library's.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=audience or self.audience,
                issuer=self.issuer,
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,  # PyJWT would compare iat with the wall clock
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        moment = int(now.timestamp())
        if not isinstance(claims["exp"], int) or not isinstance(claims["nbf"], int):
            raise TokenError("exp and nbf must be integers")
        if moment >= claims["exp"]:
            raise TokenError("token expired")
        if moment < claims["nbf"]:
            raise TokenError("token not yet valid")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenError("bad subject")
        return subject
