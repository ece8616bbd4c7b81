"""Encryption of connection secrets at rest (Fernet keyed by the settings' secret key)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fabric_core.errors import ConfigurationError


def _fernet(secret_key: str) -> Fernet:
    # Fernet wants 32 url-safe base64 bytes; any passphrase is stretched to that.
    digest = hashlib.sha256(secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts and decrypts short secrets such as source passwords.

    ``keys``: the current key first, then previous ones (a rotation in progress): secrets are
    encrypted with the current key and decrypted with any of them. ``reload`` (optional)
    returns the keys as they are now configured; a secret none of the known keys opens makes
    the box reload once, so a process that started before ``fabric secrets rotate`` replaced
    the key file reads what the rotation wrote.
    """

    def __init__(
        self, keys: str | Sequence[str], *, reload: Callable[[], list[str]] | None = None
    ) -> None:
        self._reload = reload
        self._use([keys] if isinstance(keys, str) else list(keys))

    def _use(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigurationError("No secret key is configured.")
        self.keys = keys
        self._fernet = MultiFernet([_fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            if self._reloaded():
                return self.decrypt(token)
            raise self._wrong_key() from None

    def rotate(self, token: str) -> str:
        """``token`` encrypted again with the current key (same secret, fresh timestamp)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise self._wrong_key() from None

    def opens_with_current_key(self, token: str) -> bool:
        try:
            _fernet(self.keys[0]).decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def _reloaded(self) -> bool:
        if self._reload is None:
            return False
        keys = self._reload()
        if keys == self.keys:
            return False
        self._use(keys)
        return True

    @staticmethod
    def _wrong_key() -> ConfigurationError:
        return ConfigurationError(
            "A stored password cannot be decrypted: FABRIC_SECRET_KEY differs from the key "
            "it was saved with. Restore that key (or set it as FABRIC_SECRET_KEY_PREVIOUS "
            "during a rotation) or set the connection's password again."
        )


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
