"""Encryption of connection secrets at rest (Fernet keyed by the settings' secret key)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from fabric_core.errors import FabricError


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
            raise FabricError(
                "A stored password cannot be decrypted: FABRIC_SECRET_KEY differs from the key "
                "it was saved with. Restore that key or set the connection's password again."
            ) from exc


def redact(message: str, secrets: list[str | None]) -> str:
    """Replace every occurrence of the given secrets in a message by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message
