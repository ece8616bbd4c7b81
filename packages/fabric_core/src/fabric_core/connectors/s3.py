"""Files on S3 (any S3-compatible server) as a source: a bucket and prefix whose Parquet,
CSV and newline-delimited JSON files are tables (see ``s3_layout`` for which make which).

The catalog has one schema per connection, named ``bucket/prefix``; a table's name is its
key (or folder) relative to the prefix. A table's fingerprint is its objects' keys, ETags
and sizes: a re-sync of unchanged objects lists the prefix and reads no file.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import s3fs
from pydantic import Field

from fabric_core.catalog.harvest import (
    HarvestedCatalog,
    HarvestedColumn,
    HarvestedTable,
    KnownTable,
    LogicalType,
)
from fabric_core.connectors import s3_formats
from fabric_core.connectors.base import ConnectionSpec, error_detail, failed_check, passed_check
from fabric_core.connectors.contract import Connector, sorted_values
from fabric_core.connectors.s3_layout import MAX_NAME, ObjectTable, S3Object, group_tables
from fabric_core.crypto import redact
from fabric_core.errors import (
    InvalidInputError,
    SourceAuthError,
    SourceError,
    SourceUnreachableError,
)
from fabric_core.schemas import ConnectionCheck, GlobPatterns, RequestBody
from fabric_core.source_policy import SourcePolicy

DEFAULT_REGION = "us-east-1"
VALUE_SCAN_ROWS = 1_000_000
_AUTH_ERROR = re.compile(r"\b(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch)\b|\(403\)")
# The schema name is bucket/prefix and must fit the catalog's 255 characters.
MAX_ROOT = 255


class S3Options(RequestBody):
    include: GlobPatterns | None = Field(
        default=None, description="Glob patterns of keys (relative to the prefix) to harvest."
    )
    exclude: GlobPatterns | None = Field(default=None, description="Glob patterns to leave out.")
    csv_delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    csv_quote: str | None = Field(default=None, min_length=1, max_length=1)
    csv_header: bool | None = Field(default=None, description="First line names the columns.")
    csv_encoding: str | None = Field(default=None, max_length=32)


_ARROW_TYPES = (
    (("int", "uint"), LogicalType.INTEGER),
    (("halffloat", "float", "double"), LogicalType.FLOAT),
    (("decimal",), LogicalType.DECIMAL),
    (("bool",), LogicalType.BOOLEAN),
    (("date",), LogicalType.DATE),
    (("timestamp",), LogicalType.DATETIME),
    (("time",), LogicalType.TIME),
    (("string", "large_string", "utf8", "large_utf8"), LogicalType.STRING),
    (("binary", "large_binary", "fixed_size_binary"), LogicalType.BINARY),
    (("list", "large_list", "fixed_size_list"), LogicalType.ARRAY),
    (("struct", "map"), LogicalType.JSON),
    (("null",), LogicalType.STRING),
)


def arrow_logical_type(native_type: str) -> LogicalType:
    """The logical type of an Arrow type as ``str(pa.DataType)`` spells it."""
    text = native_type.strip().lower()
    if text.startswith("dictionary<values="):
        return arrow_logical_type(text.removeprefix("dictionary<values=").split(",")[0])
    for prefixes, logical in _ARROW_TYPES:
        if text.startswith(prefixes):
            return logical
    return LogicalType.OTHER


class S3Connector(Connector):
    kind = "s3"
    fields: ClassVar[frozenset[str]] = frozenset(
        {"bucket", "prefix", "endpoint_url", "region", "access_key_id"}
    )
    secret_field: ClassVar[str] = "secret_access_key"
    destination_fields: ClassVar[tuple[str, ...]] = ("kind", "endpoint_url", "bucket", "region")
    options_model = S3Options

    def complete_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        bucket = values.get("bucket")
        if not bucket or "/" in bucket:
            raise InvalidInputError("An s3 connection needs 'bucket': a bucket name (no '/').")
        values["prefix"] = (values.get("prefix") or "").strip("/") or None
        if len(f"{bucket}/{values['prefix'] or ''}") > MAX_ROOT:
            raise InvalidInputError(f"bucket and prefix together must be at most {MAX_ROOT} chars.")
        if endpoint := values.get("endpoint_url"):
            _check_endpoint(endpoint)
        return values

    def check_place(self, values: dict[str, Any], policy: SourcePolicy) -> None:
        if endpoint := values.get("endpoint_url"):
            policy.check_host(_endpoint_host(endpoint))

    def confine(self, spec: ConnectionSpec) -> ConnectionSpec:
        """The endpoint's host, checked on the addresses it resolves to now. botocore looks
        the name up again when it connects (it signs the host name, so it cannot be given the
        address): a name whose DNS answer changes in between is not caught (docs/security.md).
        """
        if spec.endpoint_url:
            parts = urlsplit(spec.endpoint_url)
            default_port = 443 if parts.scheme == "https" else 80
            spec.policy.resolve(_endpoint_host(spec.endpoint_url), parts.port or default_port)
        return spec

    def address(self, spec: ConnectionSpec) -> str:
        where = spec.endpoint_url or f"AWS {spec.region or DEFAULT_REGION}"
        return f"S3 {_root(spec)} at {where}"

    def logical_type(self, native_type: str) -> LogicalType:
        return arrow_logical_type(native_type)

    def check(self, spec: ConnectionSpec, timeout: float) -> ConnectionCheck:
        started = time.perf_counter()
        try:
            fs = _filesystem(spec, timeout)
            _call(spec, fs.call_s3, "list_objects_v2", **_list_args(spec), MaxKeys=1)
        except SourceError as exc:
            return failed_check(exc, started)
        return passed_check(f"Listed {spec.address}", started)

    def harvest(
        self,
        spec: ConnectionSpec,
        timeout: float,
        *,
        known: Mapping[tuple[str, str], KnownTable] | None = None,
    ) -> HarvestedCatalog:
        fs = _filesystem(spec, timeout)
        tables, errors = _tables(spec, fs)
        schema = _root(spec)
        harvested: list[HarvestedTable] = []
        for table in tables:
            fingerprint = table.fingerprint(s3_formats.format_options(table, spec.options))
            previous = (known or {}).get((schema, table.name))
            if previous is not None and previous.fingerprint == fingerprint:
                columns, rows = previous.columns, previous.row_estimate
            else:
                try:
                    described = _call(spec, s3_formats.describe, fs, schema, table, spec.options)
                except s3_formats.NotReadable as exc:
                    errors.append({"object": table.name, "error": redact(str(exc), spec.secrets)})
                    continue
                if problem := _column_names_problem([f.name for f in described.fields]):
                    errors.append({"object": table.name, "error": problem})
                    continue
                columns = [
                    HarvestedColumn(
                        name=f.name,
                        ordinal=i,
                        native_type=str(f.type),
                        logical_type=arrow_logical_type(str(f.type)),
                        nullable=f.nullable,
                    )
                    for i, f in enumerate(described.fields, start=1)
                ]
                rows = described.row_estimate
            harvested.append(
                HarvestedTable(schema, table.name, "table", rows, None, columns, fingerprint)
            )
        return HarvestedCatalog(schemas=[schema], tables=harvested, errors=errors)

    def read_batches(
        self,
        spec: ConnectionSpec,
        schema: str,
        table: str,
        columns: list[str],
        *,
        text_columns: list[str] = (),
        limit: int | None,
        batch_rows: int,
        timeout: float,
    ) -> Iterator[pa.RecordBatch]:
        fs = _filesystem(spec, timeout)
        found = _table(spec, fs, schema, table)
        batches = _call(
            spec, s3_formats.read, fs, _root(spec), found, columns, spec.options, batch_rows
        )
        remaining = limit
        try:
            while remaining is None or remaining > 0:
                batch = _call(spec, next, batches, None)
                if batch is None:
                    return
                if remaining is not None:
                    batch = batch.slice(0, remaining)
                    remaining -= batch.num_rows
                if text_columns:
                    batch = _as_text(batch, text_columns)
                if batch.num_rows:
                    yield batch
        finally:
            batches.close()  # stops the scan: a preview reads only what it shows

    def distinct_values(
        self,
        spec: ConnectionSpec,
        schema: str,
        table: str,
        column: str,
        *,
        limit: int,
        timeout: float,
    ) -> list[Any]:
        # Files have no index to answer DISTINCT: read the column, but no more than
        # VALUE_SCAN_ROWS rows, so a lookup on a huge folder stays bounded in time.
        found: set[Any] = set()
        batches = self.read_batches(
            spec, schema, table, [column], limit=VALUE_SCAN_ROWS, batch_rows=65536, timeout=timeout
        )
        try:
            for batch in batches:
                found.update(v for v in pc.unique(batch.column(0)).to_pylist() if v is not None)
                if len(found) >= limit:
                    break
        finally:
            batches.close()
        return sorted_values(found)[:limit]


def _column_names_problem(names: list[str]) -> str | None:
    """Why the catalog cannot hold these column names (too long, or twice), if it cannot."""
    too_long = [n[:40] for n in names if len(n) > MAX_NAME]
    if too_long:
        return f"column names longer than {MAX_NAME} characters: {too_long[:3]}"
    seen: set[str] = set()
    twice = sorted({n for n in names if n in seen or seen.add(n)})
    if twice:
        return f"column names that appear twice: {twice[:5]}"
    return None


def _root(spec: ConnectionSpec) -> str:
    return f"{spec.bucket}/{spec.prefix}" if spec.prefix else f"{spec.bucket}"


def _list_args(spec: ConnectionSpec) -> dict[str, str]:
    return {"Bucket": spec.bucket, "Prefix": f"{spec.prefix}/" if spec.prefix else ""}


def _check_endpoint(endpoint: str) -> None:
    """Refuse what urlsplit cannot take apart later (an unclosed '[', a port that is not a
    number from 1 to 65535), so a stored endpoint never fails a /test or a sync with a 500."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"endpoint_url is not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError("endpoint_url must be an http(s) URL with a host.")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInputError("endpoint_url's port must be from 1 to 65535.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInputError("endpoint_url must not carry credentials, a query or a fragment.")


def _endpoint_host(endpoint_url: str) -> str:
    return urlsplit(endpoint_url).hostname or ""


def _filesystem(spec: ConnectionSpec, timeout: float):
    CONNECTOR.confine(spec)  # at every use: the policy or the endpoint's DNS may have changed
    signed = bool(spec.access_key_id and spec.secret_access_key)
    fs = s3fs.S3FileSystem(
        # Never the ambient credentials of the process: a connection's own, or none.
        anon=not signed,
        key=spec.access_key_id if signed else None,
        secret=spec.secret_access_key if signed else None,
        endpoint_url=spec.endpoint_url,
        client_kwargs={"region_name": spec.region or DEFAULT_REGION},
        config_kwargs={
            "connect_timeout": timeout,
            "read_timeout": spec.policy.read_timeout,
            # One attempt per s3fs try (botocore's max_attempts counts retries, not attempts).
            "retries": {"total_max_attempts": 1, "mode": "standard"},
        },
        use_listings_cache=False,
    )
    fs.retries = 2  # s3fs's own retries of connection errors, on top of botocore's
    return fs


def _list(spec: ConnectionSpec, fs, under: str = "") -> list[S3Object]:
    """The objects under the prefix (or only those whose relative key starts with ``under``)."""
    args = _list_args(spec)
    base = args["Prefix"]
    args = {**args, "Prefix": base + under}
    objects: list[S3Object] = []
    token: dict[str, str] = {}
    while True:
        page = _call(spec, fs.call_s3, "list_objects_v2", **args, **token)
        for item in page.get("Contents", []):
            key = item["Key"][len(base) :]
            if key and not key.endswith("/"):
                objects.append(S3Object(key, item.get("ETag", "").strip('"'), item["Size"]))
        if not page.get("IsTruncated"):
            return objects
        token = {"ContinuationToken": page["NextContinuationToken"]}


def _tables(spec: ConnectionSpec, fs) -> tuple[list[ObjectTable], list[dict[str, str]]]:
    return group_tables(_list(spec, fs), spec.options.get("include"), spec.options.get("exclude"))


def _table(spec: ConnectionSpec, fs, schema: str, name: str) -> ObjectTable:
    if schema != _root(spec):
        raise SourceError(f"{spec.address}: schema {schema!r} is not this connection's.")
    # Only the objects that can belong to the table are listed ("." is the prefix itself).
    under = "" if name == "." else name
    objects = _list(spec, fs, under)
    tables, _ = group_tables(objects, spec.options.get("include"), spec.options.get("exclude"))
    for table in tables:
        if table.name == name:
            return table
    raise SourceError(f"{spec.address}: no file or folder {name!r} any more; sync again.")


def _as_text(batch: pa.RecordBatch, text_columns: list[str]) -> pa.RecordBatch:
    arrays = [
        pc.cast(batch.column(i), pa.string()) if name in text_columns else batch.column(i)
        for i, name in enumerate(batch.schema.names)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _call(spec: ConnectionSpec, function, *args, **kwargs):
    """``function(...)`` with S3 client errors as Fabric errors, secrets redacted."""
    try:
        return function(*args, **kwargs)
    except SourceError:  # NotReadable included: already Fabric's, already redacted
        raise
    except Exception as exc:
        raise _source_error(spec, exc) from None


def _source_error(spec: ConnectionSpec, exc: Exception) -> SourceError:
    detail = f"{type(exc).__name__}: {error_detail(exc, spec.secrets)}"
    text = str(exc)
    if isinstance(exc, PermissionError) or _AUTH_ERROR.search(text):
        return SourceAuthError(
            redact(
                f"{spec.address} refused the credentials of access key "
                f"{spec.access_key_id!r}: {detail}",
                spec.secrets,
            )
        )
    if "NoSuchBucket" in text or "specified bucket does not exist" in text:
        return SourceError(f"{spec.address}: bucket {spec.bucket!r} does not exist.")
    if _unreachable(exc):
        return SourceUnreachableError(f"{spec.address} is unreachable: {detail}")
    return SourceError(f"{spec.address}: {detail}")


def _unreachable(exc: Exception) -> bool:
    name = type(exc).__name__
    if "Timeout" in name or ("Connect" in name and type(exc).__module__.startswith("botocore")):
        return True
    if isinstance(exc, FileNotFoundError | PermissionError):
        return False
    # s3fs turns an S3 error code it has no mapping for (a wrong region, a bad request) into
    # OSError(EIO): the server answered, so trying again will not help.
    return isinstance(exc, OSError) and exc.errno != errno.EIO


CONNECTOR = S3Connector()
