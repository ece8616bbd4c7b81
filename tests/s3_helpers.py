"""Source files on the test S3 server, each test under a prefix of its own."""

from __future__ import annotations

import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq


def unique_prefix(name: str) -> str:
    return f"sources/{name}-{uuid.uuid4().hex[:8]}"


def put(s3_server, key: str, data: bytes) -> None:
    with s3_server.filesystem().open(f"{s3_server.bucket}/{key}", "wb") as handle:
        handle.write(data)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def s3_body(s3_server, prefix: str, **overrides) -> dict:
    return {
        "name": "lake",
        "kind": "s3",
        "bucket": s3_server.bucket,
        "prefix": prefix,
        "endpoint_url": s3_server.endpoint_url,
        "access_key_id": s3_server.access_key,
        "secret_access_key": s3_server.secret_key,
        **overrides,
    }
