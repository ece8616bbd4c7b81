"""Dataset storage: a local folder or an S3 bucket, both through fsspec."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from fabric_core.settings import Settings


def _object_store_options(
    settings: Settings, key: str | None, secret: str | None
) -> dict[str, str | int]:
    """Settings in the spelling of object_store, the S3 client inside polars."""
    options = {
        "aws_region": settings.s3_region,
        # An S3 that goes away fails the write in bounded time, not after minutes of retries.
        "connect_timeout": "5 seconds",
        "timeout": "120 seconds",
        "max_retries": 3,
        "retry_timeout_ms": 20_000,
    }
    if key and secret:
        options |= {"aws_access_key_id": key, "aws_secret_access_key": secret}
    if settings.s3_endpoint_url:
        options["aws_endpoint_url"] = settings.s3_endpoint_url
        if settings.s3_endpoint_url.startswith("http://"):
            options["aws_allow_http"] = "true"
    return options


class Storage:
    """Paths, writes and reads under one root (``/abs/folder`` or ``bucket/prefix``)."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        root: str,
        scheme: str,
        native_options: dict[str, str | int] | None = None,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.scheme = scheme
        # The same credentials for writers with their own S3 client (polars' object_store).
        self.native_options = native_options

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        url = settings.storage_url or ""
        if url.startswith("s3://"):
            import s3fs

            key = settings.s3_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
            secret = settings.s3_secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
            fs = s3fs.S3FileSystem(
                key=key,
                secret=secret,
                endpoint_url=settings.s3_endpoint_url,
                client_kwargs={"region_name": settings.s3_region},
                # Listings change under us while versions are written and cleaned up.
                use_listings_cache=False,
            )
            return cls(
                fs, url.removeprefix("s3://"), "s3", _object_store_options(settings, key, secret)
            )
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

    def native_target(self, path: str) -> tuple[str, dict[str, str | int] | None]:
        """``path`` as a URL and options for a writer with its own file and S3 clients.

        Parquet parts are written that way: through a Python file object, every write takes
        the GIL and s3fs holds whole upload parts, which made peak memory grow with the part
        size (docs/benchmarks.md).
        """
        if self.scheme == "s3":
            return self.url(path), self.native_options
        return path, None

    def write_json(self, path: str, document: dict[str, Any]) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(json.dumps(document, indent=2, default=str).encode())

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def remove_tree(self, path: str) -> None:
        """Remove a folder, and on S3 the unfinished multipart uploads under it (a killed
        writer leaves them, invisible to listings but stored and billed)."""
        if self.scheme == "s3":
            self._abort_uploads(path)
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

    def _abort_uploads(self, path: str) -> None:
        bucket, _, key = path.partition("/")
        page: dict[str, str] = {"Prefix": key.rstrip("/") + "/"}
        while True:
            try:
                listing = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, **page)
            except NotImplementedError:  # a server without the call keeps none to abort
                return
            for upload in listing.get("Uploads", []):
                self.fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
            if not listing.get("IsTruncated"):
                return
            page = {
                "Prefix": page["Prefix"],
                "KeyMarker": listing["NextKeyMarker"],
                "UploadIdMarker": listing["NextUploadIdMarker"],
            }

    def check(self) -> None:
        """Write, read and delete a probe object; raises when the storage cannot be used."""
        probe = self.path(".fabric-health", uuid.uuid4().hex)
        with self.fs.open(probe, "wb") as handle:
            handle.write(b"ok")
        self.fs.rm(probe)
