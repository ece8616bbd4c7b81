"""Severities and kinds of drift items, and when a type casts to another."""

from __future__ import annotations

from fabric_core.catalog.harvest import LogicalType
from fabric_core.datasets.types import supertype

BREAKING, DEGRADING, INFO = "breaking", "degrading", "info"
SEVERITIES = (BREAKING, DEGRADING, INFO)

COLUMN_REMOVED = "column_removed"
TABLE_REMOVED = "table_removed"
COLUMN_RETYPED = "column_retyped"
NULLABLE_CHANGED = "nullable_changed"
UNMAPPED_CODES = "unmapped_codes"
NEW_COLUMN = "new_column"
VALUE_SAMPLE_FAILED = "value_sample_failed"

# Codes kept in an item's details: enough to act on, bounded whatever the source holds.
MAX_CODES_SHOWN = 100


def castable(source_type: str, target_type: str) -> bool:
    """Whether every value of ``source_type`` becomes a value of ``target_type`` under the
    dataset casts (fabric_core.datasets.transform.cast_expr), none of them null.

    That is the case when the target is text, when the target already holds the source (the
    supertype of both is the target: integer into decimal or float, date into datetime), and
    for datetime into date (the day is kept). Text into anything else, or a float into an
    integer, can fail value by value: not castable.
    """
    if target_type == source_type or target_type == LogicalType.STRING:
        return True
    if (source_type, target_type) == (LogicalType.DATETIME, LogicalType.DATE):
        return True
    try:
        return supertype([source_type, target_type]) == LogicalType(target_type)
    except ValueError:  # a type this version does not know
        return False
