"""The difference between two complete versions of a dataset, from what each recorded when it
was published: its columns and its manifest (rows per source, request, mapping snapshot).

Nothing is read from storage or from a source; a version's files may even be gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabric_core.datasets.answers import (
    Change,
    ColumnMappingChanges,
    DatasetDiff,
    DefinitionChanges,
    MappingChanges,
    SchemaChanges,
    SourceChanges,
    ValueMapChange,
    ValueMappingChanges,
)
from fabric_core.errors import ConflictError, NotFoundError
from fabric_core.models import Dataset, DatasetVersion

COMPLETE = "complete"
# What a column mapping is compared by; the rest of a snapshot entry names the same things.
_MAPPING_FIELDS = ("unified_column", "unified_column_id", "logical_type")


def diff_versions(
    session: Session, name: str, *, from_version: int | None, to_version: int | None
) -> DatasetDiff:
    """How version ``to_version`` (default: the current one) differs from ``from_version``
    (default: the latest complete version before it). Equal versions give an empty diff.

    Raises:
        NotFoundError: no such dataset, or no such version (a default one included).
        ConflictError: a version that is not complete (building, or failed).
    """
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise NotFoundError(f"No dataset named {name!r}.")
    if to_version is None:
        if dataset.current_version is None:
            raise NotFoundError(f"Dataset {name!r} has no complete version yet.")
        to_version = dataset.current_version
    newer = _complete_version(session, dataset, to_version)
    if from_version is None:
        from_version = session.scalar(
            select(DatasetVersion.version)
            .where(
                DatasetVersion.dataset_id == dataset.id,
                DatasetVersion.version < to_version,
                DatasetVersion.status == COMPLETE,
            )
            .order_by(DatasetVersion.version.desc())
            .limit(1)
        )
        if from_version is None:
            raise NotFoundError(
                f"Dataset {name!r} has no complete version before {to_version} to compare "
                "it with; give from= and to= explicitly."
            )
    older = _complete_version(session, dataset, from_version)
    old_manifest, new_manifest = older.manifest or {}, newer.manifest or {}
    return DatasetDiff(
        name=name,
        to=to_version,
        schema=schema_changes(older.columns.get("columns", []), newer.columns.get("columns", [])),
        rows=Change(**{"from": older.row_count, "to": newer.row_count}),
        rows_per_source=Change(
            **{
                "from": old_manifest.get("rows_per_source", {}),
                "to": new_manifest.get("rows_per_source", {}),
            }
        ),
        sources=_source_changes(old_manifest, new_manifest),
        definition=DefinitionChanges(
            changed=_changed_fields(
                old_manifest.get("request", {}), new_manifest.get("request", {})
            )
        ),
        mappings=mapping_changes(
            old_manifest.get("mapping_snapshot", {}), new_manifest.get("mapping_snapshot", {})
        ),
        **{"from": from_version},
    )


def _complete_version(session: Session, dataset: Dataset, version: int) -> DatasetVersion:
    record = session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version
        )
    )
    if record is None:
        raise NotFoundError(f"Dataset {dataset.name!r} has no version {version}.")
    if record.status != COMPLETE:
        raise ConflictError(
            f"Version {version} of dataset {dataset.name!r} is {record.status}, not complete: "
            "only complete versions can be compared."
        )
    return record


def schema_changes(old: list[dict[str, str]], new: list[dict[str, str]]) -> SchemaChanges:
    """Columns (``{"name", "type"}``) added, removed and retyped from ``old`` to ``new``; each
    list in the order of the version that has the columns (the newer one for retyped)."""
    old_types = {c["name"]: c["type"] for c in old}
    new_types = {c["name"]: c["type"] for c in new}
    return SchemaChanges(
        added=[name for name in new_types if name not in old_types],
        removed=[name for name in old_types if name not in new_types],
        retyped=[
            {"name": name, "from": old_types[name], "to": kind}
            for name, kind in new_types.items()
            if name in old_types and old_types[name] != kind
        ],
    )


def _labels(manifest: dict[str, Any]) -> list[str]:
    return [f"{s['connection']}.{s['schema']}.{s['table']}" for s in manifest.get("sources", [])]


def _source_changes(old: dict[str, Any], new: dict[str, Any]) -> SourceChanges:
    old_labels, new_labels = _labels(old), _labels(new)
    return SourceChanges(
        added=[label for label in new_labels if label not in old_labels],
        removed=[label for label in old_labels if label not in new_labels],
    )


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Change]:
    fields = list(dict.fromkeys([*new, *old]))
    return {
        field: Change(**{"from": old.get(field), "to": new.get(field)})
        for field in fields
        if old.get(field) != new.get(field)
    }


def mapping_changes(old: dict[str, Any], new: dict[str, Any]) -> MappingChanges:
    """The difference of two mapping snapshots (fabric_core.datasets.plan), by source column."""
    return MappingChanges(
        column_mappings=_column_mapping_changes(
            old.get("column_mappings", []), new.get("column_mappings", [])
        ),
        value_mappings=_value_mapping_changes(
            old.get("value_mappings", {}), new.get("value_mappings", {})
        ),
    )


def _column_mapping_changes(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> ColumnMappingChanges:
    old_by_source = {m["source"]: m for m in old}
    new_by_source = {m["source"]: m for m in new}
    changed = []
    for source, mapping in new_by_source.items():
        before = old_by_source.get(source)
        if before is None:
            continue
        was = {k: before.get(k) for k in _MAPPING_FIELDS}
        now = {k: mapping.get(k) for k in _MAPPING_FIELDS}
        if was != now:
            changed.append({"source": source, "from": was, "to": now})
    return ColumnMappingChanges(
        added=[m for s, m in new_by_source.items() if s not in old_by_source],
        removed=[m for s, m in old_by_source.items() if s not in new_by_source],
        changed=changed,
    )


def _value_mapping_changes(
    old: dict[str, dict[str, str | None]], new: dict[str, dict[str, str | None]]
) -> ValueMappingChanges:
    changed = []
    for source, entries in new.items():
        before = old.get(source)
        if before is None or before == entries:
            continue
        changed.append(
            ValueMapChange(
                source=source,
                added={k: v for k, v in entries.items() if k not in before},
                removed={k: v for k, v in before.items() if k not in entries},
                changed={
                    k: Change(**{"from": before[k], "to": v})
                    for k, v in entries.items()
                    if k in before and before[k] != v
                },
            )
        )
    return ValueMappingChanges(
        added={s: m for s, m in new.items() if s not in old},
        removed={s: m for s, m in old.items() if s not in new},
        changed=changed,
    )
