"""``fabric secrets rotate``: every stored secret moves to a new key; nothing is ever lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_helpers import register
from conftest import pg_url
from fabric_core import cli
from fabric_core.crypto import SecretBox
from fabric_core.errors import ConfigurationError
from fabric_core.models import Connection
from fabric_core.runtime import create_runtime
from fabric_core.secret_rotation import rotate_rows
from fabric_core.settings import Settings, get_settings
from sqlalchemy import select
from typer.testing import CliRunner

SECRETS = {"pg": "pg-password-1", "my": "my-password-2", "s3": "s3-secret-key-3"}


def _register_all(runtime) -> None:
    register(runtime, name="pg", kind="postgresql", host="h", database="d", password=SECRETS["pg"])
    register(runtime, name="my", kind="mysql", host="h", database="d", password=SECRETS["my"])
    register(
        runtime,
        name="s3",
        kind="s3",
        bucket="b",
        access_key_id="AKIA",
        secret_access_key=SECRETS["s3"],
    )
    root = runtime.source_policy.sqlite_roots[0]
    register(runtime, name="plain", kind="sqlite", database=str(root / "x.db"))


def _stored(settings: Settings) -> dict[str, str]:
    runtime = create_runtime(settings)
    try:
        with runtime.session_factory() as session:
            rows = session.execute(
                select(Connection.name, Connection.password_encrypted).where(
                    Connection.password_encrypted.is_not(None)
                )
            ).all()
    finally:
        runtime.close()
    return dict(rows)


def _rotate(home: Path, monkeypatch, *args: str, **env: str):
    monkeypatch.setenv("FABRIC_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli.app, ["secrets", "rotate", *args])
    finally:
        get_settings.cache_clear()


def test_rotation_with_the_key_file(tmp_path, monkeypatch):
    home = tmp_path / "home"
    settings = Settings(home=home)
    runtime = create_runtime(settings)
    _register_all(runtime)
    old_key = settings.resolved_secret_key()
    old_box = runtime.box  # a process started before the rotation
    runtime.close()
    before = _stored(settings)

    result = _rotate(home, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "3 stored secret(s) encrypted under the new key" in result.output
    assert "Restart: the gateway, the sync service, the dataset service, Airflow" in result.output

    new_key = (home / "secret.key").read_text().strip()
    assert new_key != old_key and len(new_key) >= 32
    assert (home / "secret.key.previous").read_text().strip() == old_key
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
    after = _stored(settings)
    new_only = SecretBox(new_key)
    for name, secret in SECRETS.items():
        assert after[name] != before[name]
        # No stored secret needs the old key any more ...
        assert new_only.decrypt(after[name]) == secret
        # ... old ciphertexts (backups, in-flight reads) still open under the new box ...
        assert SecretBox([new_key, old_key]).decrypt(before[name]) == secret
        # ... and a process started before the rotation reads what it wrote.
        assert old_box.decrypt(after[name]) == secret
    with pytest.raises(ConfigurationError):
        SecretBox(old_key).decrypt(after["pg"])

    # A process started after the rotation opens everything.
    restarted = create_runtime(Settings(home=home))
    assert restarted.box.keys == [new_key, old_key]
    restarted.close()

    # A second rotation drops the first key.
    again = _rotate(home, monkeypatch)
    assert again.exit_code == 0, again.output
    third_key = (home / "secret.key").read_text().strip()
    assert (home / "secret.key.previous").read_text().strip() == new_key
    for name, ciphertext in _stored(settings).items():
        assert SecretBox(third_key).decrypt(ciphertext) == SECRETS[name]


def test_rotation_with_the_key_in_the_environment(tmp_path, monkeypatch):
    home = tmp_path / "home"
    old_key = "env-key-0123456789abcdef"
    settings = Settings(home=home, secret_key=old_key)
    runtime = create_runtime(settings)
    _register_all(runtime)
    runtime.close()

    result = _rotate(home, monkeypatch, FABRIC_SECRET_KEY=old_key)
    assert result.exit_code == 0, result.output
    assert "New key (shown once): " in result.output
    assert "Set FABRIC_SECRET_KEY to the new key" in result.output
    new_key = result.output.split("New key (shown once): ")[1].split()[0]
    assert not (home / "secret.key").exists()  # the environment decides, no file is written
    stored = _stored(settings.model_copy(update={"secret_key": new_key}))
    assert {name: SecretBox(new_key).decrypt(c) for name, c in stored.items()} == SECRETS

    given = "given-new-key-0123456789"
    result = _rotate(home, monkeypatch, "--new-key", given, FABRIC_SECRET_KEY=new_key)
    assert result.exit_code == 0 and "shown once" not in result.output
    stored = _stored(settings.model_copy(update={"secret_key": given}))
    assert {name: SecretBox(given).decrypt(c) for name, c in stored.items()} == SECRETS


def test_refusals_change_nothing(tmp_path, monkeypatch):
    home = tmp_path / "home"
    settings = Settings(home=home, secret_key="env-key-0123456789abcdef")
    runtime = create_runtime(settings)
    _register_all(runtime)
    runtime.close()
    before = _stored(settings)
    for args in (["--new-key", "change-me"], ["--new-key", "env-key-0123456789abcdef"]):
        result = _rotate(home, monkeypatch, *args, FABRIC_SECRET_KEY="env-key-0123456789abcdef")
        assert result.exit_code == 1
        assert "still opens with the current key" in result.output
    result = _rotate(home, monkeypatch, FABRIC_SECRET_KEY="")
    assert result.exit_code == 1 and "FABRIC_SECRET_KEY is set but empty" in result.output
    assert _stored(settings) == before


def test_an_interrupted_rotation_is_settled_before_the_next_key(tmp_path, monkeypatch):
    """Rows left under the previous key are moved to the current key before it is retired."""
    home = tmp_path / "home"
    settings = Settings(home=home)
    runtime = create_runtime(settings)
    _register_all(runtime)
    runtime.close()
    old_key = settings.resolved_secret_key()
    # Half a rotation: the key files were replaced, only the first secret was rewritten.
    middle_key = "middle-key-0123456789abcdef"
    (home / "secret.key.previous").write_text(old_key)
    (home / "secret.key").write_text(middle_key)
    runtime = create_runtime(settings)
    box = SecretBox([middle_key, old_key])
    with runtime.session_factory.begin() as session:
        row = session.scalars(select(Connection).where(Connection.name == "pg")).one()
        row.password_encrypted = box.rotate(row.password_encrypted)
    runtime.close()

    result = _rotate(home, monkeypatch)
    assert result.exit_code == 0, result.output
    new_key = (home / "secret.key").read_text().strip()
    assert (home / "secret.key.previous").read_text().strip() == middle_key
    for name, ciphertext in _stored(settings).items():
        assert SecretBox(new_key).decrypt(ciphertext) == SECRETS[name]


@pytest.fixture
def pg_runtime(settings, pg_database):
    # PostgreSQL: another writer can change a row between the rotation's read and its write
    # (on SQLite the rotation's IMMEDIATE transaction keeps every writer out meanwhile).
    runtime = create_runtime(settings.model_copy(update={"database_url": pg_url(pg_database())}))
    yield runtime
    runtime.close()


def test_a_secret_changed_during_the_rotation_is_not_overwritten(pg_runtime):
    runtime = pg_runtime
    _register_all(runtime)
    new_box = SecretBox(["new-key-0123456789abcdef", *runtime.box.keys])
    original = new_box.rotate
    changed = []

    def rotate_while_someone_writes(token: str) -> str:
        if not changed:  # the gateway stores a new password between the read and the write
            with runtime.session_factory.begin() as session:
                row = session.scalars(select(Connection).where(Connection.name == "pg")).one()
                row.password_encrypted = runtime.box.encrypt("changed-meanwhile")
                changed.append(row.id)
        return original(token)

    new_box.rotate = rotate_while_someone_writes
    assert rotate_rows(runtime.session_factory, new_box) == 3
    with runtime.session_factory() as session:
        row = session.scalars(select(Connection).where(Connection.name == "pg")).one()
    assert new_box.decrypt(row.password_encrypted) == "changed-meanwhile"
    assert new_box.opens_with_current_key(row.password_encrypted)


def test_alert_channel_targets_are_rotated_too(tmp_path):
    from fabric_core.alerts.channels import create_channel
    from fabric_core.alerts.schemas import AlertChannelCreate
    from fabric_core.models import AlertChannel

    settings = Settings(home=tmp_path / "home", secret_key="old-key-0123456789abcdef")
    runtime = create_runtime(settings)
    url = "https://hooks.example.com/services/T0/B0/secret-token"
    try:
        with runtime.session_factory.begin() as session:
            data = AlertChannelCreate(name="ops", kind="slack", target=url, events=["job.failed"])
            create_channel(session, data, runtime.box, runtime.source_policy)
        new_key = "new-key-0123456789abcdef"
        assert rotate_rows(runtime.session_factory, SecretBox([new_key, *runtime.box.keys])) == 1
        with runtime.session_factory() as session:
            stored = session.scalar(select(AlertChannel.target_encrypted))
    finally:
        runtime.close()
    assert SecretBox(new_key).decrypt(stored) == url
