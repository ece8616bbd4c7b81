"""Every registered source kind implements the one connector contract."""

from __future__ import annotations

import inspect

import pytest
from fabric_core.catalog.harvest import LogicalType
from fabric_core.connectors import CONNECTION_KINDS, get_connector
from fabric_core.connectors.base import ConnectionSpec
from fabric_core.connectors.contract import LOCATION_FIELDS, SECRET_FIELDS, Connector
from fabric_core.errors import InvalidInputError
from fabric_core.schemas import ConnectionCreate, UnifiedColumnCreate
from pydantic import BaseModel, ValidationError

CONTRACT_METHODS = (
    "validate_settings",
    "complete_settings",
    "address",
    "check",
    "harvest",
    "read_batches",
    "distinct_values",
    "logical_type",
)


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
def test_every_kind_satisfies_the_contract(kind):
    connector = get_connector(kind)
    assert isinstance(connector, Connector)
    assert connector.kind == kind
    assert not inspect.isabstract(type(connector))
    assert connector.default_port is None or isinstance(connector.default_port, int)
    assert connector.fields <= set(LOCATION_FIELDS)
    assert connector.secret_field in SECRET_FIELDS
    assert issubclass(connector.options_model, BaseModel)
    for name in CONTRACT_METHODS:
        implemented = inspect.signature(getattr(connector, name))
        declared = inspect.signature(getattr(Connector, name))
        declared = declared.replace(parameters=list(declared.parameters.values())[1:])
        assert [(p.name, p.kind) for p in implemented.parameters.values()] == [
            (p.name, p.kind) for p in declared.parameters.values()
        ], f"{kind}.{name}{implemented} differs from the contract {declared}"


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
def test_every_kind_maps_native_types_into_the_one_vocabulary(kind):
    assert isinstance(get_connector(kind).logical_type("integer"), LogicalType)


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
def test_the_api_accepts_every_registered_kind_and_no_other(kind):
    assert ConnectionCreate(name="x", kind=kind).kind == kind
    with pytest.raises(ValidationError):
        ConnectionCreate(name="x", kind="oracle")


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
def test_options_of_another_kind_are_refused(kind):
    connector = get_connector(kind)
    with pytest.raises(InvalidInputError) as caught:
        connector.validate_settings({}, {"colour": "blue"})
    assert "colour" in caught.value.message


def test_native_types_of_the_database_kinds():
    assert get_connector("postgresql").logical_type("numeric(12,2)") == LogicalType.DECIMAL
    assert get_connector("postgresql").logical_type("timestamp(3) with time zone") == "datetime"
    assert get_connector("postgresql").logical_type("text[]") == LogicalType.ARRAY
    assert get_connector("mysql").logical_type("tinyint(1)") == LogicalType.BOOLEAN
    assert get_connector("mysql").logical_type("varchar(20)") == LogicalType.STRING
    assert get_connector("sqlite").logical_type("VARCHAR(10)") == LogicalType.STRING


def test_spec_lists_every_secret_and_hides_them_from_repr():
    spec = ConnectionSpec(kind="postgresql", password="pw-1", secret_access_key="sk-2")
    assert spec.secrets == ["pw-1", "sk-2"]
    assert "pw-1" not in repr(spec) and "sk-2" not in repr(spec)


def test_logical_type_names_are_the_one_enum_and_plain_strings_in_json():
    created = UnifiedColumnCreate(name="gender", logical_type="string")
    assert created.logical_type is LogicalType.STRING
    assert created.model_dump(mode="json")["logical_type"] == "string"
    with pytest.raises(ValidationError):
        UnifiedColumnCreate(name="gender", logical_type="text")
