"""Reading the files of an S3 table: schemas from Parquet footers or a bounded sample, and
Arrow batches streamed from the objects (never a whole file in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson
import pyarrow.parquet as pq

from fabric_core.connectors.s3_layout import ObjectTable
from fabric_core.errors import SourceError

# What a CSV or NDJSON harvest reads to infer types: the first block of the file.
SAMPLE_BYTES = 1 << 20
READ_BLOCK_BYTES = 4 << 20
# Range reads for footers: a Parquet footer is read with two small requests, not a block.
FOOTER_BLOCK_BYTES = 1 << 16


class NotReadable(SourceError):
    """An object is not what its extension says (or its files disagree, or it went away)."""


@dataclass(slots=True)
class Described:
    fields: list[pa.Field]
    row_estimate: int | None


def csv_options(options: dict[str, Any], block_size: int):
    header = options.get("csv_header", True)
    read = pacsv.ReadOptions(
        block_size=block_size,
        encoding=options.get("csv_encoding") or "utf8",
        autogenerate_column_names=not header,
    )
    parse = pacsv.ParseOptions(
        delimiter=options.get("csv_delimiter") or ",",
        quote_char=options.get("csv_quote") or '"',
        newlines_in_values=True,
    )
    return read, parse


def format_options(table: ObjectTable, options: dict[str, Any]) -> dict[str, Any]:
    """The options that change what is read from this table's files."""
    if table.format != "csv":
        return {}
    return {k: v for k, v in sorted(options.items()) if k.startswith("csv_")}


def partition_schema(table: ObjectTable) -> pa.Schema:
    """Partition columns typed from their values: integers when every value is one."""
    values: dict[str, set[str]] = {key: set() for key in table.partition_keys}
    for obj in table.objects:
        for key, value in table.partition_values(obj).items():
            values[key].add(value)

    def is_int(text: str) -> bool:
        return text.lstrip("-").isdigit() and len(text) < 19

    return pa.schema(
        [
            pa.field(key, pa.int64() if seen and all(map(is_int, seen)) else pa.string())
            for key, seen in values.items()
        ]
    )


def describe(fs, root: str, table: ObjectTable, options: dict[str, Any]) -> Described:
    """The table's columns (Arrow fields) and row estimate, read from footers or a sample.

    Raises:
        NotReadable: a file is not in the table's format, or the files disagree.
    """
    try:
        if table.format == "parquet":
            return _describe_parquet(fs, root, table)
        with fs.open(f"{root}/{table.objects[0].key}", "rb", block_size=SAMPLE_BYTES) as handle:
            if table.format == "csv":
                read, parse = csv_options(options, SAMPLE_BYTES)
                reader = pacsv.open_csv(handle, read_options=read, parse_options=parse)
            else:
                reader = pajson.open_json(
                    handle, read_options=pajson.ReadOptions(block_size=SAMPLE_BYTES)
                )
            return Described(list(reader.schema), None)
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise NotReadable(" ".join(str(exc).split())[:500]) from None
    except FileNotFoundError:
        raise NotReadable("removed while the sync read it") from None


def _describe_parquet(fs, root: str, table: ObjectTable) -> Described:
    schema: pa.Schema | None = None
    rows = 0
    for obj in table.objects:
        path = f"{root}/{obj.key}"
        with fs.open(path, "rb", block_size=FOOTER_BLOCK_BYTES, cache_type="readahead") as f:
            footer = pq.ParquetFile(f)
            file_schema = footer.schema_arrow.remove_metadata()
            rows += footer.metadata.num_rows
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise NotReadable(
                f"{obj.key} has columns {file_schema.names} of other types than the other "
                f"files of {table.name!r}; a folder is one table only when its files share "
                "one schema"
            )
    assert schema is not None
    return Described(list(schema) + list(partition_schema(table)), rows)


def read(
    fs,
    root: str,
    table: ObjectTable,
    columns: list[str],
    options: dict[str, Any],
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The table's ``columns`` as Arrow batches; CSV values come as text (the dataset build
    casts them to the catalog's types and counts what does not fit)."""
    if table.format == "parquet":
        yield from _read_parquet(fs, root, table, columns, batch_rows)
        return
    for obj in table.objects:
        with fs.open(f"{root}/{obj.key}", "rb", block_size=READ_BLOCK_BYTES) as handle:
            if table.format == "csv":
                read_options, parse = csv_options(options, READ_BLOCK_BYTES)
                reader = pacsv.open_csv(
                    handle,
                    read_options=read_options,
                    parse_options=parse,
                    convert_options=pacsv.ConvertOptions(
                        include_columns=columns,
                        column_types=dict.fromkeys(columns, pa.string()),
                    ),
                )
            else:
                reader = pajson.open_json(
                    handle, read_options=pajson.ReadOptions(block_size=READ_BLOCK_BYTES)
                )
            for batch in reader:
                yield from _slices(_project(batch, columns), batch_rows)


def _read_parquet(fs, root, table, columns, batch_rows) -> Iterator[pa.RecordBatch]:
    partitioning = None
    if table.partition_keys:
        partitioning = ds.partitioning(partition_schema(table), flavor="hive")
    dataset = ds.dataset(
        [f"{root}/{obj.key}" for obj in table.objects],
        filesystem=fs,
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=root if table.name == "." else f"{root}/{table.name}",
    )
    # One file and two batches ahead at most: memory stays a few row groups, whatever the size.
    scanner = dataset.scanner(
        columns=columns, batch_size=batch_rows, batch_readahead=2, fragment_readahead=1
    )
    for batch in scanner.to_batches():
        yield from _slices(batch, batch_rows)


def _project(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = [
        batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows)
        for name in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def _slices(batch: pa.RecordBatch, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, batch_rows):
        yield batch.slice(start, batch_rows)
