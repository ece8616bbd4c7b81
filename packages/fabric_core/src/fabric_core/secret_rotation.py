"""``fabric secrets rotate``: every stored secret (connection secrets, alert channel targets)
encrypted again under a new key.

Order, so that a failure at any point leaves every secret readable:

1. settle: a secret an earlier, interrupted rotation left under the previous key is first
   encrypted under the current key (so the previous key may be dropped below);
2. the new key is stored (``secret.key`` replaced in one step, the old key kept in
   ``secret.key.previous``) before any secret uses it;
3. each secret is rotated in its own short transaction (``MultiFernet.rotate``), written only
   if nobody changed it meanwhile: a crash leaves each row under the old or the new key, both
   of which the processes know (they reload the key files when a secret does not open), and
   the metadata DB's write lock is never held for more than one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.crypto import SecretBox
from fabric_core.errors import ConfigurationError
from fabric_core.models import AlertChannel, Connection
from fabric_core.secret_files import checked_secret, new_secret, replace_secret
from fabric_core.settings import PREVIOUS_SECRET_KEY_FILE, SECRET_KEY_FILE, Settings

# Every process that decrypts connection secrets holds the key it read at start-up.
PROCESSES_TO_RESTART = (
    "the gateway",
    "the sync service",
    "the dataset service",
    "Airflow's workers (their task processes read the key)",
)


@dataclass
class Rotation:
    rotated: int
    new_key: str
    key_file: bool
    """True: the key lives in {home}/secret.key (replaced); False: FABRIC_SECRET_KEY is set and
    the operator must set the new value."""
    generated: bool


def rotate_secrets(
    settings: Settings, session_factory: sessionmaker[Session], new_key: str | None = None
) -> Rotation:
    """Encrypt every stored secret under ``new_key`` (generated when None)."""
    current = SecretBox(settings.resolved_secret_keys())
    settle(session_factory, current)
    generated = new_key is None
    new_key = new_secret() if new_key is None else checked_secret("the new key", new_key)
    old_key = current.keys[0]
    if new_key == old_key:
        raise ConfigurationError("The new key is the current key; choose another one.")
    key_file = settings.secret_key_from_file()
    if key_file:
        # The old key first: until the new one is in place it is still the current key.
        replace_secret(settings.home / PREVIOUS_SECRET_KEY_FILE, old_key)
        replace_secret(settings.home / SECRET_KEY_FILE, new_key)
    rotated = rotate_rows(session_factory, SecretBox([new_key, old_key]))
    return Rotation(rotated=rotated, new_key=new_key, key_file=key_file, generated=generated)


def settle(session_factory: sessionmaker[Session], box: SecretBox) -> int:
    """Encrypt under the box's current key the secrets only a previous key opens."""
    return _rewrite(session_factory, box, only_stale=True)


def rotate_rows(session_factory: sessionmaker[Session], box: SecretBox) -> int:
    """Encrypt every stored secret under the box's current key; returns how many."""
    return _rewrite(session_factory, box, only_stale=False)


# Every encrypted column: connection secrets and alert channel targets (webhook URLs).
ENCRYPTED_COLUMNS = (Connection.password_encrypted, AlertChannel.target_encrypted)


def _rewrite(session_factory: sessionmaker[Session], box: SecretBox, *, only_stale: bool) -> int:
    return sum(
        _rewrite_column(session_factory, box, column, only_stale=only_stale)
        for column in ENCRYPTED_COLUMNS
    )


def _rewrite_column(
    session_factory: sessionmaker[Session], box: SecretBox, column, *, only_stale: bool
) -> int:
    model = column.class_
    with session_factory() as session:
        ids = session.scalars(select(model.id).where(column.is_not(None))).all()
    rewritten = 0
    for row_id in ids:
        while True:
            with session_factory.begin() as session:
                stored = session.scalar(select(column).where(model.id == row_id))
                if stored is None or (only_stale and box.opens_with_current_key(stored)):
                    break
                # Only if the gateway did not change the secret since it was read.
                changed = session.execute(
                    update(model)
                    .where(model.id == row_id, column == stored)
                    .values({column.key: box.rotate(stored)})
                    .execution_options(synchronize_session=False)
                ).rowcount
            if changed:
                rewritten += 1
                break
    return rewritten
