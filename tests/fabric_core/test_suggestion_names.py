"""Column names as concepts: case, separators, camelCase, accents, abbreviations, synonyms."""

from __future__ import annotations

import pytest
from fabric_core.suggestions.names import concepts, safe_name, similarity, words
from fabric_core.suggestions.shapes import overlap, shape, shape_similarity, value_class


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dataNascimento", ["data", "nascimento"]),
        ("DATA_NASCIMENTO", ["data", "nascimento"]),
        ("data-nascimento", ["data", "nascimento"]),
        ("País", ["pais"]),
        ("HTTPServerName", ["http", "server", "name"]),
        ("address2", ["address", "2"]),
        ("e.mail", ["e", "mail"]),
    ],
)
def test_words_split_case_separators_digits_and_accents(name, expected):
    assert words(name) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["email", "e_mail", "eMail", "E-Mail", "correo", "mail", "emailAddress"], ("email",)),
        (["name", "nome", "nombre", "holder", "full_name", "nome_completo"], ("name",)),
        (["country", "pais", "País", "PAIS", "ctry"], ("country",)),
        (
            ["birth_date", "dob", "DOB", "data_nascimento", "fecha_nacimiento", "birthdate"],
            ("birth", "date"),
        ),
        (["phone", "telefone", "teléfono", "tel", "phone_number"], ("phone",)),
        (["city", "cidade", "ciudad", "CIDADE"], ("city",)),
        (["customers", "clientes", "cliente", "cust"], ("customer",)),
        (["zip_code", "cep", "postal_code"], ("postal",)),
    ],
)
def test_spellings_of_one_concept_agree(names, expected):
    assert {concepts(name) for name in names} == {expected}


def test_abbreviations_and_stop_words():
    assert concepts("cust_nm") == ("customer", "name")
    assert concepts("dt_nasc") == ("date", "birth")
    assert concepts("date_of_birth") == ("birth", "date")
    assert concepts("numero_de_telefone") == ("number", "phone")
    assert concepts("iso_country") == ("iso", "country")
    assert concepts("mail_count") == ("email", "count")
    assert concepts("") == ()


def test_similarity_weighs_generic_words_less():
    assert similarity(concepts("e_mail"), concepts("email")) == 1.0
    assert similarity(concepts("country"), concepts("country_code")) > similarity(
        concepts("birth_date"), concepts("order_date")
    )
    assert similarity(concepts("birth_date"), concepts("created_at")) == 0.0
    assert similarity(concepts("address"), concepts("addr_line")) > 0  # a prefix abbreviation
    assert similarity((), concepts("name")) == 0.0
    assert 0 < similarity(concepts("customer_name"), concepts("name")) < 1


def test_safe_name():
    assert safe_name(("birth", "date")) == "birth_date"
    assert safe_name(("2", "x")) == "column_2_x"
    assert safe_name(()) == "column"


def test_value_shapes():
    assert value_class("ana@mail.pt") == "email"
    assert value_class("1984-03-02") == "date"
    assert value_class("2023-01-01T10:00:00") == "date"
    assert value_class("+55 11 912345678") == "phone"
    assert value_class("+55") == "integer"  # a dialling code, not a phone number
    assert value_class("351") == "integer"
    assert value_class("BR") == "code2"
    assert value_class("BRA") == "code3"
    assert value_class("São Paulo") == "words"
    iso2, iso3, dial = shape(["BR", "PT", "ES"]), shape(["BRA", "PRT"]), shape(["55", "351"])
    assert shape_similarity(iso2, iso3) > shape_similarity(iso2, dial)
    assert shape([]) is None
    assert shape(["1950-01-01", "1960-01-01", "1970-01-01"]).median_year == 1960
    assert overlap(["São Paulo", "Lisboa"], ["sao paulo", "Madrid", "x"]) == 0.5
