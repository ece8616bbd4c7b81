"""Encryption of connection secrets at rest (Fernet keyed by the settings' secret key)."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken

from fabric_core.errors import ConfigurationError


class SecretBox:
    """Encrypts and decrypts short secrets such as source passwords."""

    def __init__(self, secret_key: str) -> None:
        # Fernet wants 32 url-safe base64 bytes; any passphrase is stretched to that.
        digest = hashlib.sha256(secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "A stored password cannot be decrypted: FABRIC_SECRET_KEY differs from the key "
                "it was saved with. Restore that key or set the connection's password again."
            ) from exc


_CREDENTIAL_PATTERNS = [
    # libpq key/value strings, quoted or not: password='p\'w' / password=pw
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.|'')*'|\S+)", re.IGNORECASE),
    # user:password@ in URLs
    re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)"),
]


def _spellings(secret: str) -> set[str]:
    """The forms a secret takes inside DSNs, SQL literals and URLs."""
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    return {
        secret,
        libpq,
        libpq.replace("'", "''"),
        secret.replace("'", "''"),
        quote(secret),
        quote(secret, safe=""),
    }


def redact(message: str, secrets: list[str | None]) -> str:
    """Remove the given secrets (in every spelling drivers echo) and any inline credentials."""
    for secret in secrets:
        if secret:
            for form in sorted(_spellings(secret), key=len, reverse=True):
                message = message.replace(form, "***")
    for pattern in _CREDENTIAL_PATTERNS:
        message = pattern.sub(
            lambda m: m.group(1) + "***" + (m.group(3) if m.lastindex == 3 else ""), message
        )
    return message
