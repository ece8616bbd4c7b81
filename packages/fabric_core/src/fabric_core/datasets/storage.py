"""Dataset storage: a local folder or an S3 bucket, both through fsspec."""

from __future__ import annotations

import json
import os
import uuid
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from fabric_core.settings import Settings

UPLOAD_PART_BYTES = 8 * 2**20


class Storage:
    """Paths, writes and reads under one root (``/abs/folder`` or ``bucket/prefix``)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, scheme: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.scheme = scheme

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        url = settings.storage_url or ""
        if url.startswith("s3://"):
            import s3fs

            fs = s3fs.S3FileSystem(
                key=settings.s3_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID"),
                secret=settings.s3_secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY"),
                endpoint_url=settings.s3_endpoint_url,
                client_kwargs={"region_name": settings.s3_region},
                # Listings change under us while versions are written and cleaned up.
                use_listings_cache=False,
            )
            return cls(fs, url.removeprefix("s3://"), "s3")
        path = settings.storage_path.resolve()
        return cls(LocalFileSystem(auto_mkdir=True), str(path), "file")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def url(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def dataset_dir(self, name: str) -> str:
        return self.path("datasets", name)

    def version_dir(self, name: str, version: int) -> str:
        return self.path("datasets", name, f"v{version}")

    def open_write(self, path: str) -> IO[bytes]:
        if self.scheme == "s3":
            # Multipart uploads of 8 MiB: s3fs would otherwise hold up to 50 MiB per open file
            # and make peak memory grow with the part size (docs/benchmarks.md).
            return self.fs.open(path, "wb", block_size=UPLOAD_PART_BYTES)
        return self.fs.open(path, "wb")

    def write_json(self, path: str, document: dict[str, Any]) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(json.dumps(document, indent=2, default=str).encode())

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def remove_tree(self, path: str) -> None:
        if not self.fs.exists(path):
            return
        entries = self.fs.find(path, withdirs=True, detail=True)
        self.fs.rm(path, recursive=True)
        if self.scheme == "s3":
            # Some S3 servers (SeaweedFS) keep empty folder entries after their objects go;
            # they only show when asked for by name.
            folders = [name for name, info in entries.items() if info["type"] == "directory"]
            for folder in sorted({*folders, path}, key=len, reverse=True):
                if self.fs.exists(folder):
                    self.fs.rm_file(folder)

    def check(self) -> None:
        """Write, read and delete a probe object; raises when the storage cannot be used."""
        probe = self.path(".fabric-health", uuid.uuid4().hex)
        with self.fs.open(probe, "wb") as handle:
            handle.write(b"ok")
        self.fs.rm(probe)
