"""Built-in vocabularies of codes: what each spelling of a code means, and its canonical form.

Countries and currencies come from ``pycountry`` (ISO 3166-1 and ISO 4217, with the
Portuguese and Spanish names of its gettext catalogues), not from tables typed here. Booleans
and genders are small enough to spell out.

Choices (see docs/api.md, "Value suggestions"):

- canonical forms: countries alpha-2 (``BR``), currencies alpha-3 (``BRL``), booleans
  ``true``/``false``, genders ``M``/``F``;
- a numeric ISO code is also known without its leading zeros (``76`` for ``076``), as an
  integer column of the source reads it;
- gender initials are read as ``M`` male / ``F`` female, except in a source column holding
  ``H`` and ``M`` but no ``F``: there they are Spanish (``H`` hombre, ``M`` mujer);
- booleans: ``1``/``0``, ``true``/``false``, ``t``/``f``, ``y``/``n``, ``yes``/``no``,
  ``s``/``n``, ``sim``/``não``, ``sí``/``no``, ``verdadeiro``/``verdadero``/``falso``.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import pycountry

from fabric_core.code_suggestions.normalize import normalize


@dataclass(frozen=True)
class Term:
    """What one spelling means: a concept (named by its canonical value) and the spelling's
    form, said in reasons (``"Portuguese name"``)."""

    concept: str
    form: str


@dataclass
class Vocabulary:
    name: str
    title: str
    # normalized spelling -> its term; the first spelling registered wins a clash.
    terms: dict[str, Term] = field(default_factory=dict)
    canonical_values: list[str] = field(default_factory=list)
    # Spellings that mean something else in a column holding these values (see genders).
    column_reading: Callable[[set[str]], dict[str, Term]] | None = None

    def add(self, spelling: str | None, concept: str, form: str) -> None:
        key = normalize(spelling) if spelling else ""
        if key and key not in self.terms:
            self.terms[key] = Term(concept, form)

    def reading_of(self, column_values: Iterable[str]) -> dict[str, Term]:
        """The terms to use in one source column: the vocabulary's own, with the column's
        exceptions over them."""
        if self.column_reading is None:
            return self.terms
        overrides = self.column_reading({normalize(v) for v in column_values})
        return {**self.terms, **overrides} if overrides else self.terms


def _translations(domain: str, language: str) -> gettext.NullTranslations:
    return gettext.translation(domain, pycountry.LOCALES_DIR, languages=[language], fallback=True)


_LANGUAGES = (("pt_BR", "Portuguese"), ("pt", "Portuguese"), ("es", "Spanish"))


def _add_numeric(vocabulary: Vocabulary, numeric: str | None, concept: str) -> None:
    if numeric:
        vocabulary.add(numeric, concept, "numeric code")
        vocabulary.add(str(int(numeric)), concept, "numeric code")


@cache
def countries() -> Vocabulary:
    vocabulary = Vocabulary("iso3166", "ISO 3166-1 countries")
    translations = [(_translations("iso3166-1", code), language) for code, language in _LANGUAGES]
    entries = list(pycountry.countries)
    # Codes before names, so that a name never takes a code's spelling.
    for country in entries:
        vocabulary.canonical_values.append(country.alpha_2)
        vocabulary.add(country.alpha_2, country.alpha_2, "alpha-2 code")
        vocabulary.add(country.alpha_3, country.alpha_2, "alpha-3 code")
        _add_numeric(vocabulary, getattr(country, "numeric", None), country.alpha_2)
    names = {
        country.alpha_2: [
            name
            for name in (
                getattr(country, a, None) for a in ("name", "common_name", "official_name")
            )
            if name
        ]
        for country in entries
    }
    # Then English names, then each language's: a translation never takes the spelling of
    # another country's English name.
    for alpha_2, english in names.items():
        for name in english:
            vocabulary.add(name, alpha_2, "English name")
    for translation, language in translations:
        for alpha_2, english in names.items():
            for name in english:
                vocabulary.add(translation.gettext(name), alpha_2, f"{language} name")
    return vocabulary


@cache
def currencies() -> Vocabulary:
    vocabulary = Vocabulary("iso4217", "ISO 4217 currencies")
    translations = [(_translations("iso4217", code), language) for code, language in _LANGUAGES]
    entries = list(pycountry.currencies)
    for currency in entries:
        vocabulary.canonical_values.append(currency.alpha_3)
        vocabulary.add(currency.alpha_3, currency.alpha_3, "alpha-3 code")
        _add_numeric(vocabulary, getattr(currency, "numeric", None), currency.alpha_3)
    for currency in entries:
        vocabulary.add(currency.name, currency.alpha_3, "English name")
    for translation, language in translations:
        for currency in entries:
            vocabulary.add(translation.gettext(currency.name), currency.alpha_3, f"{language} name")
    return vocabulary


def _spelled_out(name: str, title: str, spellings: dict[str, tuple[str, ...]]) -> Vocabulary:
    vocabulary = Vocabulary(name, title, canonical_values=list(spellings))
    for concept, words in spellings.items():
        for word in words:
            vocabulary.add(word, concept, f"spelling {word!r}")
    return vocabulary


@cache
def booleans() -> Vocabulary:
    return _spelled_out(
        "boolean",
        "booleans",
        {
            "true": ("true", "t", "1", "yes", "y", "sim", "s", "si", "verdadeiro", "verdadero"),
            "false": ("false", "f", "0", "no", "n", "nao", "falso"),
        },
    )


def _spanish_initials(values: set[str]) -> dict[str, Term]:
    if {"h", "m"} <= values and "f" not in values:
        return {
            "h": Term("M", "Spanish initial (hombre), the column holds H and M"),
            "m": Term("F", "Spanish initial (mujer), the column holds H and M"),
        }
    return {}


@cache
def genders() -> Vocabulary:
    vocabulary = _spelled_out(
        "gender",
        "genders",
        {
            "M": ("m", "male", "man", "masculino", "masc", "homem", "hombre", "h"),
            "F": ("f", "female", "woman", "feminino", "femenino", "fem", "mulher", "mujer"),
        },
    )
    vocabulary.column_reading = _spanish_initials
    return vocabulary


def all_vocabularies() -> list[Vocabulary]:
    """Smallest first: on a tie in detection the more specific vocabulary wins (``si``/``no``
    are booleans before they are Slovenia and Norway)."""
    return [booleans(), genders(), currencies(), countries()]
