"""Matching source codes onto a canonical set of target values.

A source value is matched, in this order (first that answers):

1. equal to a target value: already canonical, nothing to map;
2. equal to a target value once both are normalized (case, accents, spaces): score 0.99;
3. a spelling of the same concept in the target set's vocabulary (``Brasil`` and ``BR`` are
   both Brazil in ISO 3166): score 0.95, or 0.8 where only the column's context says so;
4. a near spelling (rapidfuzz similarity of the normalized forms at least 85 of 100, for
   values of four characters or more and without digits: shorter codes, and numbers, that
   differ in one character mean something else) of a target value or of a vocabulary
   spelling: score 0.85 times the similarity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from fabric_core.code_suggestions.normalize import normalize
from fabric_core.code_suggestions.vocabularies import Term, Vocabulary, all_vocabularies

NORMALIZED_SCORE = 0.99
VOCABULARY_SCORE = 0.95
CONTEXT_SCORE = 0.8
FUZZY_WEIGHT = 0.85
FUZZY_CUTOFF = 85.0
FUZZY_MIN_CHARS = 4
# A vocabulary is detected in a set of distinct values when at least DETECTION_SHARE of them
# are its spellings, or, in a large column with a dirty tail (typos, junk), at least
# DETECTION_MIN_SHARE of them and DETECTION_MIN_COUNT or more. On a tie the smaller
# vocabulary wins (see all_vocabularies). A column of city names, where a few dozen happen to
# be countries among thousands, is detected as nothing.
DETECTION_SHARE = 0.6
DETECTION_MIN_SHARE = 0.3
DETECTION_MIN_COUNT = 20


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


@dataclass(frozen=True)
class Match:
    target_value: str
    score: float
    reason: str


def detect_vocabulary(values: Iterable[str]) -> Vocabulary | None:
    """The vocabulary that reads the largest share of the distinct ``values``, when it clearly
    fits (see DETECTION_SHARE); None when none does."""
    normalized = {normalize(v) for v in values} - {""}
    if not normalized:
        return None
    best: tuple[float, Vocabulary] | None = None
    for vocabulary in all_vocabularies():
        known = sum(1 for v in normalized if v in vocabulary.terms)
        share = known / len(normalized)
        fits = share >= DETECTION_SHARE or (
            share >= DETECTION_MIN_SHARE and known >= DETECTION_MIN_COUNT
        )
        if fits and (best is None or share > best[0]):
            best = (share, vocabulary)
    return best[1] if best else None


class TargetSet:
    """The canonical values source codes are mapped onto, with what is needed to match them:
    their normalized forms and, when they are a vocabulary's spellings, their concepts."""

    def __init__(self, values: list[str], vocabulary: Vocabulary | None) -> None:
        self.values = values
        self.vocabulary = vocabulary
        self._present = set(values)
        self._by_normalized: dict[str, str] = {}
        for value in values:
            self._by_normalized.setdefault(normalize(value), value)
        # concept -> the target value that spells it (the first one, if several do)
        self._by_concept: dict[str, str] = {}
        if vocabulary is not None:
            for value in values:
                term = vocabulary.terms.get(normalize(value))
                if term is not None:
                    self._by_concept.setdefault(term.concept, value)
        # Near spellings are looked for among the targets and the vocabulary's spellings of
        # the concepts in the set (long enough to compare).
        self._fuzzy: dict[str, str] = {
            n: v
            for n, v in self._by_normalized.items()
            if len(n) >= FUZZY_MIN_CHARS and not _has_digit(n)
        }
        if vocabulary is not None:
            for spelling, term in vocabulary.terms.items():
                target = self._by_concept.get(term.concept)
                if target is not None and len(spelling) >= FUZZY_MIN_CHARS:
                    self._fuzzy.setdefault(spelling, target)
        self._fuzzy_choices = list(self._fuzzy)

    @classmethod
    def of_vocabulary(cls, vocabulary: Vocabulary) -> TargetSet:
        return cls(list(vocabulary.canonical_values), vocabulary)

    def reading(self, column_values: Iterable[str]) -> dict[str, Term]:
        """The vocabulary's terms as one source column reads them (see Vocabulary.reading_of)."""
        return self.vocabulary.reading_of(column_values) if self.vocabulary else {}

    def is_canonical(self, value: str, reading: dict[str, Term]) -> bool:
        """``value`` is a target value and means itself in its column (a Spanish ``M`` in a
        column of ``H`` and ``M`` is not the target ``M``)."""
        if value not in self._present:
            return False
        key = normalize(value)
        return self.vocabulary is None or reading.get(key) is self.vocabulary.terms.get(key)

    def match(self, value: str, reading: dict[str, Term]) -> Match | None:
        """The target ``value`` means, or None; ``reading`` from :meth:`reading` for its column.
        A canonical value is not asked (see is_canonical)."""
        key = normalize(value)
        if not key:
            return None
        term = reading.get(key)
        # The column's own reading of a spelling comes first (a Spanish M is not "M").
        contextual = (
            term is not None
            and self.vocabulary is not None
            and term is not self.vocabulary.terms.get(key)
        )
        same = None if contextual else self._by_normalized.get(key)
        if same is not None:
            return Match(same, NORMALIZED_SCORE, f"same as {same!r} ignoring case and accents")
        if term is not None and self.vocabulary is not None:
            target = self._by_concept.get(term.concept)
            if target is not None:
                return Match(
                    target,
                    CONTEXT_SCORE if contextual else VOCABULARY_SCORE,
                    f"{term.form} of {term.concept} ({self.vocabulary.title})",
                )
        return self._near(key)

    def _near(self, key: str) -> Match | None:
        if len(key) < FUZZY_MIN_CHARS or _has_digit(key) or not self._fuzzy_choices:
            return None
        found = process.extractOne(
            key, self._fuzzy_choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF
        )
        if found is None:
            return None
        spelling, similarity, _ = found
        target = self._fuzzy[spelling]
        return Match(
            target,
            round(FUZZY_WEIGHT * similarity / 100, 2),
            f"near spelling of {spelling!r} ({target}), similarity {similarity / 100:.2f}",
        )
