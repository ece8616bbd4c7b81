"""Suggested code mappings of a unified column (accepted through POST /api/value-mappings)."""

from __future__ import annotations

from fabric_core.code_suggestions.schemas import (
    VALUE_SUGGESTIONS_DEFAULT_LIMIT,
    VALUE_SUGGESTIONS_MAX_LIMIT,
    ValueSuggestions,
)
from fabric_core.code_suggestions.service import suggest_values
from fabric_web.common import RuntimeDep
from fastapi import APIRouter, Query

from fabric_gateway.auth import EDITOR

router = APIRouter(prefix="/api", tags=["mappings"])


@router.get(
    "/unified-columns/{unified_column_id}/value-suggestions",
    response_model=ValueSuggestions,
    dependencies=[EDITOR],
)
def value_suggestions(
    unified_column_id: int,
    runtime: RuntimeDep,
    limit: int = Query(
        default=VALUE_SUGGESTIONS_DEFAULT_LIMIT,
        ge=1,
        le=VALUE_SUGGESTIONS_MAX_LIMIT,
        description="Distinct values read per mapped source column.",
    ),
) -> ValueSuggestions:
    """Canonical values suggested for the codes of the source columns mapped to a unified
    column: onto its value mappings' targets, else its declared codes, else a built-in
    vocabulary (ISO 3166 countries, ISO 4217 currencies, booleans, genders)."""
    return suggest_values(
        runtime.read_session_factory,
        unified_column_id,
        runtime.box,
        runtime.source_policy,
        limit=limit,
        circuits=runtime.circuits,
    )
