"""Secrets at rest: API secrets, webhook secrets and provider credentials, Fernet-encrypted.

The master key comes from ``ESIMGATE_MASTER_KEY`` (comma-separated Fernet keys, newest first, so a
key can be rotated without re-encrypting everything at once). The embedded development default
generates one into ``ESIMGATE_MASTER_KEY_FILE`` on first run; production refuses to start
without an explicit key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from esimgate.config import Environment, Settings


class MasterKeyError(RuntimeError):
    """The master key is missing or malformed."""


class SecretBox:
    """Encrypts and decrypts small secrets with the master key(s)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise MasterKeyError("no master key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise MasterKeyError(
                "ESIMGATE_MASTER_KEY must be Fernet keys (32 url-safe base64 bytes)"
            ) from exc
        # A separate key for signing bearer tokens, derived so one master key serves both.
        self.token_key = hmac.new(keys[0], b"esimgate bearer tokens v1", hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise MasterKeyError("a stored secret does not decrypt with the master key") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.master_key is not None:
            raw = settings.master_key.get_secret_value()
            return cls([k.strip().encode() for k in raw.split(",") if k.strip()])
        if settings.env is Environment.PRODUCTION:
            raise MasterKeyError("ESIMGATE_MASTER_KEY is required when ESIMGATE_ENV=production")
        return cls([_load_or_create_key_file(settings.master_key_file)])


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
