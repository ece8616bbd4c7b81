"""One calibrated score from several pieces of evidence.

Each piece adds to a log-odds (its ``weight`` in the evidence list); the score is the
logistic of the sum, so 0.5 is where the evidence for and against balances: a score of 0.5
or more means "accept this". The weights were set by reasoning about what each piece proves
(a synonym name is strong, a shared generic word like ``code`` weak, integers where e-mails
are expected rule a column out), then checked on bench/column_suggestions.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from fabric_core.suggestions.inventory import ColumnInfo
from fabric_core.suggestions.names import (
    GENERIC,
    any_token_matches,
    concepts,
    entities,
    similarity,
    words,
)
from fabric_core.suggestions.shapes import EXPECTED, Shape, overlap, shape, shape_similarity

BIAS = -3.2
NAME_WEIGHT = 5.0
COMMENT_WEIGHT = 1.2
ENTITY_CONFLICT = -3.0
SAME_TABLE_AS_MAPPED = -1.0
FOREIGN_KEY = 0.5
OVERLAP_WEIGHT = 3.0
VOCABULARY = 100  # fewer distinct values than this are a vocabulary, not identities
SHAPE_WEIGHT = 2.0
SHAPE_NEUTRAL = 0.6  # a shape similarity below this counts against
YEAR_GAP = -2.0
EXPECTED_MET = 0.6
EXPECTED_MISSED = -2.5
# A score of this or more means "accept this".
ACCEPT = 0.5
# Below this cheap (name, type, context) score a column is not worth reading values of.
PLAUSIBLE = -2.5

_NUMERIC = frozenset({"integer", "float", "decimal"})
_TEMPORAL = frozenset({"date", "datetime"})
_UNSPECIFIC_VALUES = frozenset({"integer", "decimal", "boolean", "date"})
_TEXTS_REMEMBERED = 100_000  # per reference: bounded however many names a catalog has


@dataclass(frozen=True)
class Reference:
    """What candidates are compared with: a unified column (its name, description and
    type) and the columns already mapped to it, with their samples when read."""

    label: str
    tokens: tuple[str, ...]
    logical_type: str
    description_tokens: tuple[str, ...] = ()
    mapped: tuple[ColumnInfo, ...] = ()
    _speaks_of: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    # Derived once per reference (cached on the instance): a reference with thousands of
    # mapped columns is compared with thousands of candidates.
    @cached_property
    def entities(self) -> frozenset[str]:
        found = set(entities(self.tokens))
        for column in self.mapped:
            found |= column.table_entities | entities(column.tokens)
        return frozenset(found)

    @cached_property
    def mapped_names(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each distinct concept list of the mapped columns (name and table entities), with
        the name of the first column that has it."""
        found: dict[tuple[str, ...], str] = {}
        for column in self.mapped:
            found.setdefault(
                tuple(dict.fromkeys((*column.tokens, *column.table_entities))), column.name
            )
        return tuple((name, theirs) for theirs, name in found.items())

    @cached_property
    def mapped_table_ids(self) -> frozenset[int]:
        return frozenset(c.table_id for c in self.mapped)

    @cached_property
    def wanted_tokens(self) -> frozenset[str]:
        return frozenset(self.tokens) | {t for c in self.mapped for t in c.tokens}

    @cached_property
    def every_token(self) -> frozenset[str]:
        """Every concept name or comment evidence compares a candidate's with."""
        found = set(self.wanted_tokens) | set(self.description_tokens)
        for _, theirs in self.mapped_names:
            found |= set(theirs)
        return frozenset(found)

    def speaks_of(self, text: str) -> bool:
        """Whether ``text`` (a name or comment) has a concept that matches one of this
        reference's at all; remembered per text, as names repeat across a catalog."""
        memo = self._speaks_of
        known = memo.get(text)
        if known is None:
            if len(memo) >= _TEXTS_REMEMBERED:
                memo.clear()
            known = memo[text] = any_token_matches(concepts(text), self.every_token)
        return known

    @property
    def expectation(self) -> tuple[str, frozenset[str]] | None:
        names = [self.tokens, *(c.tokens for c in self.mapped)]
        for concept, classes in EXPECTED.items():
            if any(concept in tokens for tokens in names):
                return concept, classes
        return None

    @classmethod
    def of_column(cls, column: ColumnInfo) -> Reference:
        """A column as the reference of another (to group columns across tables)."""
        return cls(label=column.name, tokens=(), logical_type=column.logical_type, mapped=(column,))


@dataclass
class Scored:
    column: ColumnInfo
    logit: float
    evidence: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(1.0 / (1.0 + math.exp(-self.logit)), 3)

    def add(self, kind: str, detail: str, weight: float) -> None:
        self.logit += weight
        self.evidence.append({"kind": kind, "detail": detail, "weight": round(weight, 2)})

    def public(self) -> dict:
        return {**self.column.public(), "score": self.score, "evidence": self.evidence}


def _with_context(column: ColumnInfo, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """A column's concepts plus those of its table (and foreign key) that the reference
    names too: ``clientes.nome`` is a customer name."""
    extra = [t for t in (*column.table_tokens, *column.fk_tokens) if t in wanted]
    return tuple(dict.fromkeys((*column.tokens, *extra)))


def _how(left: str, right: str, left_tokens, right_tokens) -> str:
    if words(left) == words(right):
        return "same name"
    if set(left_tokens) == set(right_tokens):
        return "synonym"
    return "similar"


def _name_evidence(candidate: ColumnInfo, reference: Reference, scored: Scored) -> float:
    best, best_label, best_tokens, cand_tokens = 0.0, reference.label, (), candidate.tokens
    if reference.tokens:
        mine = _with_context(candidate, reference.tokens)
        best, best_tokens, cand_tokens = similarity(mine, reference.tokens), reference.tokens, mine
    if reference.mapped:
        mine = tuple(dict.fromkeys((*candidate.tokens, *candidate.table_entities)))
        for name, theirs in reference.mapped_names:
            value = similarity(mine, theirs)
            if value > best:
                best, best_label, best_tokens, cand_tokens = value, name, theirs, mine
    if best > 0:
        how = _how(candidate.name, best_label, cand_tokens, best_tokens)
        scored.add(
            "name",
            f"{candidate.name!r} ~ {best_label!r} ({how}, {best:.2f})",
            NAME_WEIGHT * best,
        )
    return best


def _coverage(found: tuple[str, ...], wanted: tuple[str, ...]) -> float:
    wanted = tuple(t for t in wanted if t not in GENERIC)
    if not wanted or not found:
        return 0.0
    return sum(1 for t in wanted if t in found) / len(wanted)


def _comment_evidence(candidate: ColumnInfo, reference: Reference, scored: Scored) -> float:
    """What the candidate's comment says of the reference's concepts, and what the unified
    column's description says beyond its name (what the name already said is not counted
    twice)."""
    wanted = reference.tokens or (reference.mapped[0].tokens if reference.mapped else ())
    from_comment = _coverage(concepts(candidate.comment or ""), wanted)
    described = tuple(t for t in reference.description_tokens if t not in reference.tokens)
    from_description = _coverage(candidate.tokens, described)
    value = max(from_comment, from_description)
    if value > 0:
        if from_comment >= from_description:
            detail = f"column comment names {', '.join(wanted)}"
        else:
            detail = f"unified column's description names {', '.join(described)}"
        scored.add("comment", detail, COMMENT_WEIGHT * value)
    return value


def _type_family(logical: str) -> str:
    if logical in _NUMERIC:
        return "number"
    if logical in _TEMPORAL:
        return "time"
    return logical


def type_weight(candidate: str, reference: str) -> tuple[float, str]:
    if candidate == reference:
        return 0.4, "same logical type"
    if _type_family(candidate) == _type_family(reference):
        return 0.2, "compatible logical types"
    if "string" in (candidate, reference):
        return -0.6, "castable through text"
    return -2.5, "incompatible logical types"


def could_score(candidate: ColumnInfo, reference: Reference) -> bool:
    """False when ``cheap_score`` would find no evidence: none of the candidate's texts (its
    name, its table's, its comment, its foreign key's target) has a concept that matches one
    of the reference's. Checked per distinct text, a catalog's columns are ruled out in a
    dictionary look-up each instead of a scoring each."""
    speaks_of = reference.speaks_of
    return (
        speaks_of(candidate.name)
        or speaks_of(candidate.table)
        or (candidate.comment is not None and speaks_of(candidate.comment))
        or (
            candidate.fk_table is not None
            and speaks_of(f"{candidate.fk_table} {candidate.fk_column or ''}")
        )
    )


def cheap_score(candidate: ColumnInfo, reference: Reference) -> Scored:
    """Name, comment, type and context evidence: no source is read."""
    scored = Scored(candidate, BIAS)
    named = _name_evidence(candidate, reference, scored)
    commented = _comment_evidence(candidate, reference, scored)
    if named == 0 and commented == 0:
        return scored
    weight, detail = type_weight(candidate.logical_type, reference.logical_type)
    scored.add("type", f"{candidate.logical_type} vs {reference.logical_type}: {detail}", weight)
    theirs = reference.entities
    mine = candidate.table_entities
    if theirs and mine and not (theirs & mine):
        scored.add(
            "context",
            f"table {candidate.table!r} is about {', '.join(sorted(mine))}, "
            f"not {', '.join(sorted(theirs))}",
            ENTITY_CONFLICT,
        )
    if candidate.table_id in reference.mapped_table_ids:
        scored.add("context", "its table already has a column mapped here", SAME_TABLE_AS_MAPPED)
    wanted = reference.wanted_tokens
    if candidate.fk_table and set(candidate.fk_tokens) & (wanted - GENERIC):
        scored.add(
            "foreign_key",
            f"references {candidate.fk_table}.{candidate.fk_column}",
            FOREIGN_KEY,
        )
    return scored


def add_value_evidence(
    scored: Scored,
    reference: Reference,
    sample: tuple[str, ...] | None,
    reference_samples: list[tuple[str, ...]],
    note: str | None = None,
) -> None:
    """Compare the candidate's sampled values with the mapped columns' and with what the
    reference's concept looks like (e-mails, dates, ISO-like codes...)."""
    if sample is None:
        scored.add("values", note or "no value sample: judged on names and types", 0.0)
        return
    mine = shape(sample)
    if mine is None:
        scored.add("values", "no values to compare (empty column)", 0.0)
        return
    pooled = [v for s in reference_samples for v in s]
    theirs = shape(pooled) if pooled else None
    if theirs is not None:
        shared = overlap(sample, pooled)
        if shared > 0:
            # Sharing numbers, dates or a small vocabulary (cities, countries) says the
            # values are of one kind; sharing many names or e-mails says they are the same.
            specific = 0.3 if mine.dominant[0] in _UNSPECIFIC_VALUES else 1.0
            specific *= min(1.0, max(0.3, len(set(sample)) / VOCABULARY))
            scored.add(
                "values",
                f"{shared:.0%} of distinct values shared with mapped columns",
                OVERLAP_WEIGHT * shared * specific,
            )
        alike = shape_similarity(mine, theirs)
        scored.add(
            "pattern",
            f"values look {'alike' if alike >= SHAPE_NEUTRAL else 'different'} "
            f"({_describe(mine)} vs {_describe(theirs)})",
            SHAPE_WEIGHT * (alike - SHAPE_NEUTRAL),
        )
        if mine.median_year and theirs.median_year:
            gap = abs(mine.median_year - theirs.median_year)
            if gap > 15:
                scored.add(
                    "pattern",
                    f"dates around {mine.median_year} vs {theirs.median_year}",
                    YEAR_GAP,
                )
    expected = reference.expectation
    if expected is not None:
        concept, classes = expected
        share = mine.share(classes)
        if share >= 0.6:
            scored.add("pattern", f"values look like {concept} values", EXPECTED_MET)
        elif mine.dominant[1] >= 0.6 and mine.dominant[0] not in classes:
            scored.add(
                "pattern",
                f"values are mostly {mine.dominant[0]}, not what {concept} holds",
                EXPECTED_MISSED,
            )


def _describe(found: Shape) -> str:
    name, share = found.dominant
    return f"{share:.0%} {name}, ~{found.mean_length:.0f} chars"
