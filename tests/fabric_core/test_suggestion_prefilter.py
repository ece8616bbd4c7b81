"""Ruling columns out before scoring them: a column ``could_score`` turns down gets no
evidence from ``cheap_score``, so skipping it changes no suggestion."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from fabric_core.suggestions.inventory import ColumnInfo
from fabric_core.suggestions.names import concepts
from fabric_core.suggestions.scoring import Reference, cheap_score, could_score

NAMES = [
    "email", "e_mail", "correo", "emailAddress", "mail_count", "full_name", "nome", "holder",
    "cust_nm", "pais", "ctry", "iso_country", "dob", "dt_nasc", "birthdate", "created_at",
    "telefone", "phone_number", "cidade", "cep", "zip", "addr", "adress", "address_line",
    "id", "code", "number", "status", "amount", "total", "qty", "sku", "x1", "flag",
]  # fmt: skip
TABLES = ["customers", "clientes", "orders", "produtos", "t1", "audit_log", "suppliers"]
COMMENTS = [None, "the customer's e-mail address", "país de residência", "free text"]
FOREIGN_KEYS = [(None, None), ("customers", "id"), ("paises", "code"), ("log", "seq")]
TYPES = ["string", "integer", "date"]


def _column(number: int, name: str, table: str, comment, fk, logical_type) -> ColumnInfo:
    return ColumnInfo(
        id=number,
        table_id=number // 7,
        connection_id=1,
        schema="main",
        table=table,
        name=name,
        logical_type=logical_type,
        native_type=logical_type.upper(),
        comment=comment,
        primary_key=False,
        fk_table=fk[0],
        fk_column=fk[1],
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _candidates() -> list[ColumnInfo]:
    combinations = itertools.product(NAMES, TABLES, COMMENTS, FOREIGN_KEYS)
    return [
        _column(number, name, table, comment, fk, TYPES[number % len(TYPES)])
        for number, (name, table, comment, fk) in enumerate(combinations)
    ]


def _references(candidates: list[ColumnInfo]) -> list[Reference]:
    """Unified columns by name alone, with a description, and with mapped columns."""
    references = []
    for label, description in [
        ("email", ""),
        ("address", ""),
        ("customer_name", "who holds the account"),
        ("country", "ISO 3166 code"),
        ("birth_date", ""),
        ("warehouse", "where stock is kept"),
    ]:
        references.append(
            Reference(label, concepts(label), "string", description_tokens=concepts(description))
        )
    mapped = (candidates[0], candidates[len(candidates) // 2])
    references.append(Reference("contact", concepts("contact"), "string", mapped=mapped))
    references.append(Reference.of_column(candidates[-1]))
    return references


def test_a_column_ruled_out_would_have_had_no_evidence():
    candidates = _candidates()
    ruled_out = kept = 0
    for reference in _references(candidates):
        for candidate in candidates:
            if could_score(candidate, reference):
                kept += 1
            else:
                ruled_out += 1
                assert cheap_score(candidate, reference).evidence == [], (candidate, reference)
    # Both sides are exercised: most pairs are ruled out, many are not.
    assert ruled_out > kept > 1000, (ruled_out, kept)


def test_what_each_text_of_a_column_can_say_keeps_it():
    email = Reference("email", concepts("email"), "string")
    address = Reference("address", concepts("address"), "string")
    base = {"comment": None, "fk": (None, None), "logical_type": "string"}
    assert could_score(_column(1, "correo", "t1", **base), email)  # a synonym
    assert could_score(_column(1, "addr", "t1", **base), address)  # an abbreviation
    assert could_score(_column(1, "adress", "t1", **base), address)  # a near spelling
    assert could_score(_column(1, "x1", "emails", **base), email)  # its table
    commented = {**base, "comment": "an e-mail"}
    assert could_score(_column(1, "x1", "t1", **commented), email)  # its comment
    referencing = {**base, "fk": ("addresses", "id")}
    assert could_score(_column(1, "x1", "t1", **referencing), address)  # its foreign key
    assert not could_score(_column(1, "x1", "t1", **base), email)
