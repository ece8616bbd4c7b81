"""Private files that hold generated secrets (the secret key, the admin and service tokens).

Several processes started together on a fresh home (``fabric up`` starts three) must agree
on one value and never read a half-written file: the value is written to a temporary file in
the same folder and linked into place, so the name appears only with its whole content; a
process that loses the race reads the winner's file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fabric_core.errors import ConfigurationError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

# Values shipped in examples: a process must not start with a key anyone can read here.
PLACEHOLDERS = frozenset({"change-me", "change-me-too", "changeme", "secret", "fabric"})


def ensure_private_dir(folder: Path) -> None:
    """Make ``folder`` (created with its parents when missing) readable only by its owner.

    An existing folder of ours is tightened too: a home made before (or by hand, 0755) would
    otherwise let other users list it and read any file in it that is not itself 0600.
    A folder of another owner is left alone (it is not ours to change, and chmod would fail).
    """
    if not folder.exists():
        folder.mkdir(parents=True, mode=PRIVATE_DIR_MODE, exist_ok=True)
    status = folder.stat()
    if status.st_uid == os.getuid() and status.st_mode & 0o777 != PRIVATE_DIR_MODE:
        folder.chmod(PRIVATE_DIR_MODE)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def read_or_create_secret(path: Path) -> str:
    """The secret stored in ``path``, generated there (mode 0600) when the file is missing."""
    ensure_private_dir(path.parent)
    if not path.exists():
        _publish(path, new_secret())
    value = path.read_text().strip()
    if not value:
        raise ConfigurationError(f"{path} is empty; remove it to have a new secret generated.")
    return value


def read_secret_if_present(path: Path) -> str | None:
    """The secret stored in ``path``, or None when there is no such file (or it is empty)."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def replace_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` (0600), replacing its content in one step: a reader sees
    the old file or the new one, never a part of either."""
    ensure_private_dir(path.parent)
    with _complete_file(path, value) as temporary:
        os.replace(temporary, path)
    _sync_folder(path.parent)


def _publish(path: Path, value: str) -> None:
    # When another process won, its complete file is the one everybody reads.
    with _complete_file(path, value) as temporary, contextlib.suppress(FileExistsError):
        os.link(temporary, path)


@contextlib.contextmanager
def _complete_file(path: Path, value: str) -> Iterator[str]:
    """A temporary file next to ``path`` holding ``value``, removed afterwards if still there."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates the file 0600; it is complete before its name is linked in.
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_folder(folder: Path) -> None:
    # The rename is durable once the folder's entry is on disk (a crash keeps one of the keys).
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def checked_secret(name: str, value: str) -> str:
    """A configured secret, refused when empty or a known placeholder."""
    stripped = value.strip()
    if not stripped:
        raise ConfigurationError(f"{name} is set but empty; set a real secret or unset it.")
    if stripped.lower() in PLACEHOLDERS:
        raise ConfigurationError(
            f"{name} is the placeholder {stripped!r}; generate a real one, e.g. "
            'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    if len(stripped) < 16:
        raise ConfigurationError(f"{name} is shorter than 16 characters; use a longer secret.")
    return stripped
