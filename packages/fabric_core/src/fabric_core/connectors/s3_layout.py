"""Which objects under an S3 prefix make which tables (pure: no S3 calls here).

- A Parquet file directly under the prefix is a table named by its key.
- Parquet files inside a folder make one table named by the folder; Hive-style ``key=value``
  folders below it are partitions and become columns.
- Each CSV (``.csv``, ``.tsv``) and newline-delimited JSON (``.json``, ``.jsonl``,
  ``.ndjson``) file is a table named by its key.
- Files or folders whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_delta_log/``,
  ``.crc``) and other extensions are not data; ``include`` / ``exclude`` globs over keys
  relative to the prefix pick the rest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

FORMATS = {
    ".parquet": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "ndjson",
    ".jsonl": "ndjson",
    ".ndjson": "ndjson",
}
# Bumped when what a harvest records for the same objects changes, so caches are redone.
LAYOUT_VERSION = 1
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str  # relative to the prefix
    etag: str
    size: int


@dataclass(slots=True)
class ObjectTable:
    name: str  # relative to the prefix: a file's key or a folder
    format: str
    objects: list[S3Object] = field(default_factory=list)
    partition_keys: tuple[str, ...] = ()

    def partition_values(self, obj: S3Object) -> dict[str, str]:
        relative = obj.key if self.name == "." else obj.key[len(self.name) + 1 :]
        return dict(part.split("=", 1) for part in relative.split("/")[:-1] if _is_partition(part))

    def fingerprint(self, format_options: dict[str, Any]) -> str:
        """Changes when an object is added, removed or rewritten, or the options change."""
        document = [
            LAYOUT_VERSION,
            self.format,
            format_options,
            sorted((o.key, o.etag, o.size) for o in self.objects),
        ]
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _is_partition(segment: str) -> bool:
    key, sep, _ = segment.partition("=")
    return bool(sep and key)


def _accepted(key: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(key, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(key, p) for p in exclude)


def group_tables(
    objects: list[S3Object], include: list[str] | None = None, exclude: list[str] | None = None
) -> tuple[list[ObjectTable], list[dict[str, str]]]:
    """The tables the objects make, and the objects that cannot make one (with why)."""
    tables: dict[str, ObjectTable] = {}
    errors: list[dict[str, str]] = []
    for obj in sorted(objects, key=lambda o: o.key):
        parts = obj.key.split("/")
        filename = parts[-1]
        dot = filename.rfind(".")
        fmt = FORMATS.get(filename[dot:].lower()) if dot > 0 else None
        # A folder or file named _x or .x is not data: _SUCCESS, _temporary/, _delta_log/,
        # .hoodie/ (pyarrow's datasets skip the same).
        if fmt is None or any(part.startswith(("_", ".")) for part in parts):
            continue
        if not _accepted(obj.key, include or [], exclude or []):
            continue
        folders = parts[:-1]
        partitions: list[str] = []
        while folders and _is_partition(folders[-1]):
            partitions.insert(0, folders.pop().split("=", 1)[0])
        if fmt == "parquet" and (folders or partitions):
            name = "/".join(folders) or "."
        else:
            name, partitions = obj.key, []
        if len(name) > MAX_NAME:
            errors.append({"object": obj.key, "error": f"name longer than {MAX_NAME} characters"})
            continue
        table = tables.get(name)
        if table is None:
            table = tables[name] = ObjectTable(name, fmt, partition_keys=tuple(partitions))
        elif table.partition_keys != tuple(partitions):
            errors.append(
                {
                    "object": obj.key,
                    "error": f"partitioned as {partitions}, unlike the other files of "
                    f"{name!r} ({list(table.partition_keys)}); left out",
                }
            )
            continue
        table.objects.append(obj)
    return list(tables.values()), errors
