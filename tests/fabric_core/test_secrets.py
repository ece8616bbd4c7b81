"""Passwords are encrypted at rest, the key is generated once, messages are redacted."""

from __future__ import annotations

import pytest
from catalog_helpers import register
from fabric_core.crypto import SecretBox, redact
from fabric_core.errors import FabricError
from fabric_core.models import Connection
from fabric_core.settings import Settings
from sqlalchemy import select


def test_password_is_stored_encrypted(runtime):
    connection_id = register(
        runtime,
        name="pg",
        kind="postgresql",
        host="127.0.0.1",
        database="x",
        username="u",
        password="s3cret-pw",
    )
    with runtime.engine.connect() as connection:
        raw = connection.execute(
            select(Connection.password_encrypted).where(Connection.id == connection_id)
        ).scalar_one()
    assert "s3cret-pw" not in raw
    assert runtime.box.decrypt(raw) == "s3cret-pw"


def test_a_different_key_cannot_decrypt_and_says_what_to_do():
    token = SecretBox("key-one").encrypt("pw")
    with pytest.raises(FabricError, match="FABRIC_SECRET_KEY"):
        SecretBox("key-two").decrypt(token)


def test_generated_secret_key_is_stable_and_private(tmp_path):
    first = Settings(home=tmp_path).resolved_secret_key()
    second = Settings(home=tmp_path).resolved_secret_key()
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    given = "given-key-0123456789"
    assert Settings(home=tmp_path, secret_key=given).resolved_secret_key() == given


def test_redact_removes_every_occurrence():
    assert redact("pw=hunter2 again hunter2", ["hunter2", None]) == "pw=*** again ***"


def test_redact_catches_the_spellings_drivers_echo():
    password = "p'w\\x@1"
    echoed = (
        "Unable to connect to Postgres at \"host='h' password='p\\'w\\\\x@1'\"; "
        "LINE 1: postgres_scan('password=''p\\''w\\\\x@1''') "
        "mysql://root:p%27w%5Cx%401@127.0.0.1/db"
    )
    cleaned = redact(echoed, [password])
    assert "w\\" not in cleaned and "%5Cx" not in cleaned and "x@1" not in cleaned
    assert cleaned.count("***") >= 3
    # Inline credentials go even when the secret is not known.
    assert redact("password=hunter2 and postgresql://u:hunter3@h/db", []) == (
        "password=*** and postgresql://u:***@h/db"
    )
