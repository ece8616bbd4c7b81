"""What a column's sampled values look like: the share of e-mails, ISO-like codes, dates,
numbers, phone numbers and words, their lengths, and the years of dates."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from statistics import median

from fabric_core.suggestions.names import strip_accents

_CLASSES = (
    ("email", re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")),
    ("date", re.compile(r"^(\d{4})-\d{2}-\d{2}([ T].*)?$|^\d{1,2}[/.-]\d{1,2}[/.-](\d{4})$")),
    ("phone", re.compile(r"^(?=(?:\D*\d){8})\+?[\d\s().-]+$")),
    ("integer", re.compile(r"^[+-]?\d+$")),
    ("decimal", re.compile(r"^[+-]?\d+[.,]\d+$")),
    ("boolean", re.compile(r"^(true|false|yes|no|y|n|s|t|f|sim|nao|si)$", re.IGNORECASE)),
    ("code2", re.compile(r"^[A-Za-z]{2}$")),
    ("code3", re.compile(r"^[A-Za-z]{3}$")),
    ("words", re.compile(r"^[^\W\d_]+([ '.-]+[^\W\d_]+)*\.?$")),
)
_YEAR = re.compile(r"^(\d{4})-\d{2}-\d{2}|(\d{4})$")
# Classes alike enough to be one kind of value (alpha-2 and alpha-3 codes of one thing).
_NEAR = {frozenset({"code2", "code3"}): 0.5, frozenset({"integer", "decimal"}): 0.6}


def value_class(value: str) -> str:
    for name, pattern in _CLASSES:
        if pattern.match(value):
            return name
    return "text"


@dataclass(frozen=True, slots=True)
class Shape:
    classes: dict[str, float]
    mean_length: float
    median_year: int | None
    size: int

    @property
    def dominant(self) -> tuple[str, float]:
        name = max(self.classes, key=self.classes.__getitem__)
        return name, self.classes[name]

    def share(self, names: Iterable[str]) -> float:
        return sum(self.classes.get(n, 0.0) for n in names)


def shape(values: Iterable[str]) -> Shape | None:
    return _shape(tuple(values))


@lru_cache(maxsize=256)  # the reference's sample is compared with every candidate's
def _shape(values: tuple[str, ...]) -> Shape | None:
    texts = [v.strip() for v in values if v is not None and v.strip()]
    if not texts:
        return None
    counts = Counter(value_class(v) for v in texts)
    years = []
    for text in texts:
        found = _YEAR.match(text[:10])
        if found:
            years.append(int(found.group(1) or found.group(2)))
    dates = counts.get("date", 0)
    return Shape(
        classes={name: count / len(texts) for name, count in counts.items()},
        mean_length=sum(len(t) for t in texts) / len(texts),
        median_year=int(median(years)) if dates and years else None,
        size=len(texts),
    )


def shape_similarity(left: Shape, right: Shape) -> float:
    """1 for values of the same kinds and lengths, 0 for nothing alike."""
    names = set(left.classes) | set(right.classes)
    distance = sum(abs(left.classes.get(n, 0.0) - right.classes.get(n, 0.0)) for n in names) / 2
    for pair, alike in _NEAR.items():
        a, b = tuple(pair)
        swap = min(left.classes.get(a, 0.0), right.classes.get(b, 0.0)) + min(
            left.classes.get(b, 0.0), right.classes.get(a, 0.0)
        )
        distance -= alike * swap / 2
    kinds = 1.0 - max(min(distance, 1.0), 0.0)
    longer = max(left.mean_length, right.mean_length, 1.0)
    lengths = min(left.mean_length, right.mean_length) / longer
    return 0.75 * kinds + 0.25 * lengths


def normalized_values(values: Iterable[str]) -> frozenset[str]:
    return _normalized(tuple(values))


@lru_cache(maxsize=256)
def _normalized(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(strip_accents(v).strip().casefold() for v in values if v and v.strip())


def overlap(left: Iterable[str], right: Iterable[str]) -> float:
    """Shared distinct values over the smaller sample's size."""
    a, b = normalized_values(left), normalized_values(right)
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


# What the values of a concept look like (the first concept of a name that has one).
EXPECTED: dict[str, frozenset[str]] = {
    "email": frozenset({"email"}),
    "phone": frozenset({"phone"}),
    "birth": frozenset({"date"}),
    "country": frozenset({"code2", "code3", "words"}),
    "city": frozenset({"words"}),
    "surname": frozenset({"words"}),
    "first": frozenset({"words"}),
    "name": frozenset({"words"}),
}
