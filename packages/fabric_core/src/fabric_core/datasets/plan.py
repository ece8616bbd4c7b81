"""Planning a unified dataset: which source columns, under which names and types, with
which value mappings. Pure reads of the metadata DB; nothing touches a source here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.connections import connection_spec
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.crypto import SecretBox
from fabric_core.datasets.types import decimal_scale, polars_dtype, supertype, type_label
from fabric_core.errors import InvalidInputError
from fabric_core.models import (
    CatalogColumn,
    CatalogSchema,
    CatalogTable,
    ColumnMapping,
    Connection,
    Dataset,
    DatasetVersion,
    UnifiedColumn,
    ValueMapping,
)
from fabric_core.schemas import DatasetRequest
from fabric_core.source_policy import SourcePolicy

SOURCE_CONNECTION = "_source_connection"
SOURCE_TABLE = "_source_table"
PROVENANCE_COLUMNS = (SOURCE_CONNECTION, SOURCE_TABLE)


@dataclass(slots=True)
class OutputColumn:
    name: str
    logical_type: str
    dtype: pl.DataType
    unified_column_id: int | None = None


@dataclass(slots=True)
class SourceColumn:
    column_id: int
    source_name: str
    output_name: str
    logical_type: str
    native_type: str
    value_map: dict[str, str | None] | None = None


@dataclass
class SourceTable:
    connection_id: int
    connection_name: str
    spec: ConnectionSpec
    table_id: int
    schema: str
    name: str
    row_estimate: int | None
    columns: list[SourceColumn] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``connection.schema.table``: how row counts per source are keyed."""
        return f"{self.connection_name}.{self.schema}.{self.name}"


@dataclass
class DatasetPlan:
    name: str
    output: list[OutputColumn]
    sources: list[SourceTable]
    mapping_snapshot: dict[str, Any]
    # Each wanted name (a unified column's, or a source column's) and the output name it got;
    # kept in the manifest so the next version gives the same names.
    output_names: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({column.name: column.dtype for column in self.output})

    @property
    def estimated_rows(self) -> int:
        return sum(source.row_estimate or 0 for source in self.sources)

    def columns_public(self) -> list[dict[str, str]]:
        return [{"name": c.name, "type": type_label(c.logical_type, c.dtype)} for c in self.output]


def plan_dataset(
    session: Session,
    request: DatasetRequest,
    box: SecretBox,
    policy: SourcePolicy | None = None,
) -> DatasetPlan:
    """Resolve a dataset request against the catalog and the mappings.

    Raises:
        InvalidInputError: unknown or removed tables or columns, or names that collide.
    """
    if request.selection_mode == "tables":
        selected = None
        table_ids = list(dict.fromkeys(request.selected_tables))
    else:
        selected = _chosen_columns(session, request)
        table_ids = list(selected)
    tables = _load_tables(session, table_ids)
    all_columns = _live_columns(session, table_ids)
    if selected is None:
        selected = {table_id: list(all_columns[table_id]) for table_id in table_ids}
    mapped = _mapped(session, [c.id for cols in all_columns.values() for c in cols])

    if request.auto_include_mapped_columns:
        unified_in_output = {
            mapped[c.id].id for cols in selected.values() for c in cols if c.id in mapped
        }
        for table_id in table_ids:
            chosen = {c.id for c in selected[table_id]}
            for column in all_columns[table_id]:
                unified = mapped.get(column.id)
                if column.id not in chosen and unified and unified.id in unified_in_output:
                    selected[table_id].append(column)
            selected[table_id].sort(key=lambda c: c.ordinal)

    value_maps = (
        _value_maps(session, [c.id for cols in selected.values() for c in cols])
        if request.apply_value_mappings
        else {}
    )
    output_name_of = _OutputNames()
    for columns in selected.values():  # unified columns keep their names before any other
        for column in columns:
            if column.id in mapped:
                output_name_of(mapped[column.id].name)
    wanted = {
        mapped[c.id].name if c.id in mapped else c.name for cols in selected.values() for c in cols
    }
    for name, output_name in _previous_output_names(session, request.name).items():
        if name in wanted:
            output_name_of.keep(name, output_name)
    sources, by_output_name = _source_tables(
        tables, selected, mapped, value_maps, box, policy, output_name_of
    )
    output = [_output_column(name, members, mapped) for name, members in by_output_name.items()]
    return DatasetPlan(
        name=request.name,
        output=output + [OutputColumn(name, "string", pl.String()) for name in PROVENANCE_COLUMNS],
        sources=sources,
        mapping_snapshot=_snapshot(sources, mapped, value_maps),
        output_names=output_name_of.assigned,
    )


def _previous_output_names(session: Session, dataset_name: str) -> dict[str, str]:
    """The output names the dataset's current version gave (empty for a new dataset, or a
    version written before manifests kept them)."""
    manifest = session.scalar(
        select(DatasetVersion.manifest)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(Dataset.name == dataset_name, DatasetVersion.version == Dataset.current_version)
    )
    return dict((manifest or {}).get("output_names", {}))


def _chosen_columns(session: Session, request: DatasetRequest) -> dict[int, list[CatalogColumn]]:
    """The ``selected_columns`` by table id, checked to exist and to be live."""
    ids = list(dict.fromkeys(request.selected_columns))
    columns = {
        c.id: c for c in session.scalars(select(CatalogColumn).where(CatalogColumn.id.in_(ids)))
    }
    unknown = [i for i in ids if i not in columns]
    if unknown:
        raise InvalidInputError(f"No catalog columns with ids {unknown}.")
    removed = [f"{columns[i].name} (id {i})" for i in ids if columns[i].removed_at is not None]
    if removed:
        raise InvalidInputError(f"Columns removed from their source: {', '.join(removed)}.")
    selected: dict[int, list[CatalogColumn]] = defaultdict(list)
    for column_id in ids:
        selected[columns[column_id].table_id].append(columns[column_id])
    for cols in selected.values():
        cols.sort(key=lambda c: c.ordinal)
    return dict(selected)


def _load_tables(session: Session, table_ids: list[int]) -> dict[int, tuple]:
    rows = session.execute(
        select(CatalogTable, CatalogSchema.name, Connection)
        .join(CatalogSchema, CatalogSchema.id == CatalogTable.schema_id)
        .join(Connection, Connection.id == CatalogTable.connection_id)
        .where(CatalogTable.id.in_(table_ids))
    ).all()
    tables = {row[0].id: row for row in rows}
    unknown = [i for i in table_ids if i not in tables]
    if unknown:
        raise InvalidInputError(f"No catalog tables with ids {unknown}.")
    removed = [f"{tables[i][0].name} (id {i})" for i in table_ids if tables[i][0].removed_at]
    if removed:
        raise InvalidInputError(f"Tables removed from their source: {', '.join(removed)}.")
    return tables


def _live_columns(session: Session, table_ids: list[int]) -> dict[int, list[CatalogColumn]]:
    columns: dict[int, list[CatalogColumn]] = {table_id: [] for table_id in table_ids}
    for column in session.scalars(
        select(CatalogColumn)
        .where(CatalogColumn.table_id.in_(table_ids), CatalogColumn.removed_at.is_(None))
        .order_by(CatalogColumn.table_id, CatalogColumn.ordinal)
    ):
        columns[column.table_id].append(column)
    return columns


def _mapped(session: Session, column_ids: list[int]) -> dict[int, UnifiedColumn]:
    mapped: dict[int, UnifiedColumn] = {}
    for start in range(0, len(column_ids), 500):
        rows = session.execute(
            select(ColumnMapping.column_id, UnifiedColumn)
            .join(UnifiedColumn, UnifiedColumn.id == ColumnMapping.unified_column_id)
            .where(ColumnMapping.column_id.in_(column_ids[start : start + 500]))
        )
        mapped.update({column_id: unified for column_id, unified in rows})
    return mapped


def _value_maps(session: Session, column_ids: list[int]) -> dict[int, dict[str, str | None]]:
    maps: dict[int, dict[str, str | None]] = defaultdict(dict)
    for start in range(0, len(column_ids), 500):
        for value in session.scalars(
            select(ValueMapping).where(ValueMapping.column_id.in_(column_ids[start : start + 500]))
        ):
            maps[value.column_id][value.source_value] = value.target_value
    return dict(maps)


class _OutputNames:
    """Output names that stay distinct ignoring case, so engines that fold case (DuckDB,
    Spark, most SQL) read the dataset as written.

    A column keeps its name (its unified column's, or its own) unless another output column
    already has that name ignoring case, or it is a provenance column's: then it becomes
    ``name_2``, ``name_3``... (the first free). The same name always gets the same output name,
    so same-named columns of several tables still line up; and a name keeps the output name
    the previous version gave it (:meth:`keep`), so a new column that sorts first does not
    rename the others.
    """

    def __init__(self) -> None:
        self._assigned: dict[str, str] = {}
        self._taken = {name.casefold() for name in PROVENANCE_COLUMNS}

    @property
    def assigned(self) -> dict[str, str]:
        return dict(self._assigned)

    def keep(self, wanted: str, output_name: str) -> None:
        """Give ``wanted`` the output name a previous version gave it, if still free."""
        if wanted not in self._assigned and output_name.casefold() not in self._taken:
            self._assigned[wanted] = output_name
            self._taken.add(output_name.casefold())

    def __call__(self, wanted: str) -> str:
        if wanted in self._assigned:
            return self._assigned[wanted]
        name, suffix = wanted, 1
        while name.casefold() in self._taken:
            suffix += 1
            name = f"{wanted}_{suffix}"
        self._assigned[wanted] = name
        self._taken.add(name.casefold())
        return name


def _source_tables(tables, selected, mapped, value_maps, box, policy, output_name_of):
    sources: list[SourceTable] = []
    by_output_name: dict[str, list[SourceColumn]] = {}
    specs: dict[int, ConnectionSpec] = {}
    for table_id, columns in selected.items():
        table, schema_name, connection = tables[table_id]
        if connection.id not in specs:
            specs[connection.id] = connection_spec(connection, box, policy)
        source = SourceTable(
            connection_id=connection.id,
            connection_name=connection.name,
            spec=specs[connection.id],
            table_id=table.id,
            schema=schema_name,
            name=table.name,
            row_estimate=table.row_estimate,
        )
        for column in columns:
            unified = mapped.get(column.id)
            output_name = output_name_of(unified.name if unified else column.name)
            if any(c.output_name == output_name for c in source.columns):
                raise InvalidInputError(
                    f"Two columns of {source.label} would both become {output_name!r}; "
                    "map at most one of them to that name."
                )
            source_column = SourceColumn(
                column_id=column.id,
                source_name=column.name,
                output_name=output_name,
                logical_type=column.logical_type,
                native_type=column.native_type,
                value_map=value_maps.get(column.id),
            )
            source.columns.append(source_column)
            by_output_name.setdefault(output_name, []).append(source_column)
        if not source.columns:
            raise InvalidInputError(f"{source.label} contributes no columns.")
        sources.append(source)
    return sources, by_output_name


def _output_column(
    name: str, members: list[SourceColumn], mapped: dict[int, UnifiedColumn]
) -> OutputColumn:
    unified = next((mapped[m.column_id] for m in members if m.column_id in mapped), None)
    if unified is not None:
        logical = unified.logical_type
    else:
        # Value mappings turn codes into text: such a column's values are strings.
        logical = supertype(["string" if m.value_map else m.logical_type for m in members])
    scales = [s for m in members if (s := decimal_scale(m.native_type)) is not None]
    return OutputColumn(
        name=name,
        logical_type=str(logical),
        dtype=polars_dtype(logical, max(scales) if scales else None),
        unified_column_id=unified.id if unified else None,
    )


def _snapshot(sources, mapped, value_maps) -> dict[str, Any]:
    """The mappings a build used, stored in its manifest."""
    return {
        "column_mappings": [
            {
                "source": f"{source.label}.{column.source_name}",
                "column_id": column.column_id,
                "unified_column": mapped[column.column_id].name,
                "unified_column_id": mapped[column.column_id].id,
                "logical_type": mapped[column.column_id].logical_type,
            }
            for source in sources
            for column in source.columns
            if column.column_id in mapped
        ],
        "value_mappings": {
            f"{source.label}.{column.source_name}": column.value_map
            for source in sources
            for column in source.columns
            if column.value_map
        },
    }
