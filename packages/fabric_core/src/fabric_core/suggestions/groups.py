"""Proposed unified columns across tables: columns of different tables that likely mean the
same, grouped (at most one column of each table in a group)."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations, count

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabric_core.errors import InvalidInputError, NotFoundError
from fabric_core.models import CatalogTable
from fabric_core.suggestions.inventory import ColumnInfo, live_columns
from fabric_core.suggestions.names import GENERIC, safe_name
from fabric_core.suggestions.samples import Sampler
from fabric_core.suggestions.scoring import (
    ACCEPT,
    PLAUSIBLE,
    Reference,
    Scored,
    add_value_evidence,
    cheap_score,
)

MIN_TABLES, MAX_TABLES = 2, 50
MAX_PAIRS_SAMPLED = 400
MAX_COLUMNS_SAMPLED = 200


def check_table_ids(session: Session, table_ids: list[int]) -> list[int]:
    ids = list(dict.fromkeys(table_ids))
    if not MIN_TABLES <= len(ids) <= MAX_TABLES:
        raise InvalidInputError(
            f"table_ids must name {MIN_TABLES} to {MAX_TABLES} different tables; got {len(ids)}."
        )
    found = set(
        session.scalars(
            select(CatalogTable.id).where(
                CatalogTable.id.in_(ids), CatalogTable.removed_at.is_(None)
            )
        )
    )
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise NotFoundError(f"No catalog table with id {unknown[0]}.")
    return ids


def _candidate_pairs(columns: list[ColumnInfo]) -> set[tuple[ColumnInfo, ColumnInfo]]:
    """Pairs of columns of different tables that share a concept (an inverted index, not
    every pair: cheap on thousands of columns)."""
    index: dict[str, list[ColumnInfo]] = defaultdict(list)
    for column in columns:
        tokens = [t for t in column.tokens if t not in GENERIC] or list(column.tokens)
        for token in tokens:
            index[token].append(column)
    pairs = set()
    for members in index.values():
        for a, b in combinations(members, 2):
            if a.table_id != b.table_id:
                pairs.add((a, b) if a.id < b.id else (b, a))
    return pairs


def _pair_scores(
    columns: list[ColumnInfo], sampler: Sampler | None
) -> list[tuple[ColumnInfo, ColumnInfo, Scored]]:
    cheap = []
    for a, b in _candidate_pairs(columns):
        scored = cheap_score(b, Reference.of_column(a))
        if scored.logit >= PLAUSIBLE:
            cheap.append((a, b, scored))
    cheap.sort(key=lambda p: (-p[2].logit, p[0].id, p[1].id))
    sampled = cheap[:MAX_PAIRS_SAMPLED]
    if sampler is not None and sampled:
        wanted = list(dict.fromkeys(c for a, b, _ in sampled for c in (a, b)))
        samples = sampler.samples(wanted[:MAX_COLUMNS_SAMPLED])
        for a, b, scored in sampled:
            theirs = samples.values.get(a.id)
            add_value_evidence(
                scored,
                Reference.of_column(a),
                samples.values.get(b.id),
                [theirs] if theirs is not None else [],
                samples.notes.get(b.id) or samples.notes.get(a.id),
            )
    return cheap


def _group_public(members: list[ColumnInfo], edges: list[Scored], best: dict[int, Scored]):
    names = Counter(m.tokens for m in members)
    tokens = min(names, key=lambda t: (-names[t], len(t), t))
    types = Counter(m.logical_type for m in members)
    strongest = max(edges, key=lambda e: e.logit)
    return {
        "name": safe_name(tokens),
        "logical_type": min(types, key=lambda t: (-types[t], t)),
        "columns": [
            {**m.public(), "score": best[m.id].score, "evidence": best[m.id].evidence}
            for m in sorted(members, key=lambda m: m.id)
        ],
        "score": round(sum(e.score for e in edges) / len(edges), 3),
        "evidence": [
            {
                "kind": "group",
                "detail": f"{len(members)} columns in {len(members)} tables, "
                f"{len(edges)} matching pairs",
                "weight": 0.0,
            },
            *strongest.evidence,
        ],
    }


def suggest_groups(
    read_session_factory: sessionmaker[Session],
    sampler: Sampler | None,
    table_ids: list[int],
) -> list[dict]:
    """Groups of columns across ``table_ids`` that likely mean the same, best first."""
    with read_session_factory() as session:
        ids = check_table_ids(session, table_ids)
        columns = live_columns(session, table_ids=ids)
    accepted = [p for p in _pair_scores(columns, sampler) if p[2].score >= ACCEPT]
    return [
        _group_public(members, edges, best)
        for members, edges, best in sorted(
            group_pairs(accepted),
            key=lambda g: (-sum(e.score for e in g[1]) / len(g[1]), -len(g[0])),
        )
    ]


def group_pairs(
    accepted: list[tuple[ColumnInfo, ColumnInfo, Scored]],
) -> list[tuple[list[ColumnInfo], list[Scored], dict[int, Scored]]]:
    """Greedy grouping of matching pairs, strongest first: a pair joins its columns' groups
    unless that would put two columns of one table in a group."""
    accepted = sorted(accepted, key=lambda p: (-p[2].logit, p[0].id, p[1].id))
    next_key = count()
    group_of: dict[int, int] = {}
    groups: dict[int, list[ColumnInfo]] = {}
    edges: dict[int, list[Scored]] = defaultdict(list)
    best: dict[int, Scored] = {}
    for a, b, scored in accepted:
        ga, gb = group_of.get(a.id), group_of.get(b.id)
        if ga is None and gb is None:
            key = next(next_key)
            groups[key] = [a, b]
            group_of[a.id] = group_of[b.id] = key
        elif ga is not None and gb is not None:
            key = ga
            if ga != gb:
                if {m.table_id for m in groups[ga]} & {m.table_id for m in groups[gb]}:
                    continue
                for member in groups.pop(gb):
                    group_of[member.id] = ga
                    groups[ga].append(member)
                edges[ga].extend(edges.pop(gb, []))
        else:
            key, newcomer = (ga, b) if ga is not None else (gb, a)
            if newcomer.table_id in {m.table_id for m in groups[key]}:
                continue
            groups[key].append(newcomer)
            group_of[newcomer.id] = key
        edges[key].append(scored)
        for member in (a, b):
            if member.id not in best or best[member.id].logit < scored.logit:
                best[member.id] = scored
    return [(members, edges[key], best) for key, members in groups.items()]
