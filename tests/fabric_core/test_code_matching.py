"""Matching source codes onto canonical values (fabric_core.code_suggestions)."""

from __future__ import annotations

import pycountry as countries_module
import pytest
from fabric_core.code_suggestions.matching import (
    CONTEXT_SCORE,
    NORMALIZED_SCORE,
    VOCABULARY_SCORE,
    TargetSet,
    detect_vocabulary,
)
from fabric_core.code_suggestions.normalize import normalize
from fabric_core.code_suggestions.vocabularies import booleans, countries, currencies, genders


def _match(targets: TargetSet, value: str, column: list[str] | None = None):
    return targets.match(value, targets.reading(column or [value]))


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("  Côte d'Ivoire ", "cote d ivoire"),
        ("COTE-D_IVOIRE", "cote d ivoire"),
        ("Não", "nao"),
        ("São\tTomé  e Príncipe", "sao tome e principe"),
        ("Straße", "strasse"),
    ],
)
def test_normalize_drops_case_accents_and_separators(text, normalized):
    assert normalize(text) == normalized


@pytest.mark.parametrize(
    ("values", "vocabulary"),
    [
        (["BR", "DE", "US"], "iso3166"),
        (["Brasil", "Alemanha", "XYZ"], "iso3166"),
        (["BRL", "EUR", "USD"], "iso4217"),
        (["si", "no"], "boolean"),  # booleans before Slovenia and Norway
        (["S", "N"], "boolean"),
        (["M", "F"], "gender"),
        (["T", "F"], "boolean"),
        (["masculino", "feminino", "outro"], "gender"),
    ],
)
def test_detects_the_vocabulary_of_most_values(values, vocabulary):
    detected = detect_vocabulary(values)
    assert detected is not None and detected.name == vocabulary


_COUNTRY_NAMES = [c.name for c in list(countries_module.countries)[:40]]
_JUNK = [f"junk {i}" for i in range(60)]


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["apple", "pear", "BR"],
        ["42", "43", "44"],
        _COUNTRY_NAMES[:15] + _JUNK[:30],  # a third are countries, but too few to be sure
        # 25 cities that are countries too, among a thousand others
        _COUNTRY_NAMES[:25] + [f"city {i}" for i in range(1000)],
    ],
)
def test_detects_no_vocabulary_where_none_clearly_fits(values):
    assert detect_vocabulary(values) is None


def test_a_large_column_with_a_dirty_tail_is_still_detected():
    detected = detect_vocabulary(_COUNTRY_NAMES[:25] + _JUNK[:50])
    assert detected is not None and detected.name == "iso3166"


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("BR", "BR"),
        ("bra", "BR"),
        ("076", "BR"),
        ("76", "BR"),
        ("Brazil", "BR"),
        ("Brasil", "BR"),
        ("ALEMANHA", "DE"),
        ("Alemania", "DE"),
        ("España", "ES"),
        ("Espanha", "ES"),
        ("Reino Unido", "GB"),
        ("côte d'ivoire", "CI"),
        ("Bolivia", "BO"),
    ],
)
def test_country_spellings_map_onto_alpha_2(value, target):
    targets = TargetSet.of_vocabulary(countries())
    if value == target:
        assert targets.is_canonical(value, targets.reading([value]))
        return
    match = _match(targets, value)
    assert match is not None and match.target_value == target
    assert match.score in (NORMALIZED_SCORE, VOCABULARY_SCORE)


def test_alpha_3_codes_as_targets_receive_names_and_numbers():
    targets = TargetSet(["BRA", "DEU"], detect_vocabulary(["BRA", "DEU"]))
    assert _match(targets, "Brasil").target_value == "BRA"
    assert _match(targets, "276").target_value == "DEU"
    assert _match(targets, "br").target_value == "BRA"
    assert _match(targets, "Japan") is None  # JP is not among the targets


def test_currencies_map_onto_alpha_3():
    targets = TargetSet.of_vocabulary(currencies())
    assert _match(targets, "Real brasileiro").target_value == "BRL"
    assert _match(targets, "986").target_value == "BRL"
    assert _match(targets, "eur").target_value == "EUR"


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("S", "true"),
        ("N", "false"),
        ("Y", "true"),
        ("1", "true"),
        ("0", "false"),
        ("TRUE", "true"),
        ("t", "true"),
        ("f", "false"),
        ("sim", "true"),
        ("Não", "false"),
        ("Sí", "true"),
        ("no", "false"),
        ("yes", "true"),
    ],
)
def test_boolean_spellings_map_onto_true_false(value, target):
    targets = TargetSet.of_vocabulary(booleans())
    assert _match(targets, value).target_value == target


def test_gender_initials_read_in_their_column():
    targets = TargetSet.of_vocabulary(genders())
    portuguese = ["M", "F", "masculino"]
    assert targets.is_canonical("M", targets.reading(portuguese))
    assert _match(targets, "masculino", portuguese).target_value == "M"
    assert _match(targets, "Feminino", portuguese).target_value == "F"
    assert _match(targets, "mujer").target_value == "F"
    # H and M without F: Spanish initials (hombre, mujer); M is not the target M there.
    spanish = ["H", "M"]
    assert not targets.is_canonical("M", targets.reading(spanish))
    woman = _match(targets, "M", spanish)
    assert (woman.target_value, woman.score) == ("F", CONTEXT_SCORE)
    assert _match(targets, "H", spanish).target_value == "M"


def test_near_spellings_score_lower_and_short_codes_are_not_guessed():
    targets = TargetSet.of_vocabulary(countries())
    near = _match(targets, "Germny")
    assert near is not None and near.target_value == "DE"
    assert near.score < VOCABULARY_SCORE and "near spelling" in near.reason
    assert _match(targets, "Brazill").target_value == "BR"
    assert _match(targets, "XZ") is None  # two letters: not a country, not guessed
    assert _match(targets, "Atlantis") is None


def test_free_targets_match_ignoring_case_accents_and_spaces():
    targets = TargetSet(["São Paulo", "Rio de Janeiro"], None)
    match = _match(targets, " SAO PAULO")
    assert (match.target_value, match.score) == ("São Paulo", NORMALIZED_SCORE)
    assert _match(targets, "Rio de Janiero").target_value == "Rio de Janeiro"
    assert _match(targets, "Curitiba") is None
    numbers = TargetSet(["1000000", "R2D2 unit"], None)
    assert _match(numbers, "1000001") is None  # one digit apart is another number
    assert _match(numbers, "R2D3 unit") is None
    assert targets.is_canonical("São Paulo", {})
