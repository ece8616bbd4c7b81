"""Harvest and incremental re-sync of a MySQL/MariaDB source, against a real server."""

from __future__ import annotations

import pytest
from catalog_helpers import columns_of, counters, register, sync, tables_by_name
from conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, mysql_execute

pytestmark = pytest.mark.mysql


@pytest.fixture
def two_databases(mysql_database) -> tuple[str, str]:
    """``crm`` and ``Ops`` databases (MySQL schemas), with a foreign key from one to the other."""
    crm, ops = mysql_database(), mysql_database()
    mysql_execute(
        f"""
        CREATE TABLE `{crm}`.customers (
            id INT PRIMARY KEY,
            `Full Name` VARCHAR(120) NOT NULL COMMENT 'Given and family name',
            email VARCHAR(200) DEFAULT 'none',
            `order` INT,
            active TINYINT(1) DEFAULT 1,
            balance DECIMAL(12, 2),
            created DATETIME,
            birth DATE,
            wake TIME,
            score DOUBLE,
            photo BLOB,
            profile JSON,
            status ENUM('new', 'gold')
        ) ENGINE=InnoDB COMMENT='Customers of the shop';
        CREATE TABLE `{ops}`.`Shipments` (
            `customerId` INT NOT NULL,
            line SMALLINT NOT NULL,
            `größe` FLOAT,
            `select` TEXT,
            PRIMARY KEY (`customerId`, line),
            FOREIGN KEY (`customerId`) REFERENCES `{crm}`.customers (id)
        ) ENGINE=InnoDB;
        CREATE VIEW `{crm}`.active_customers AS SELECT id, `Full Name` FROM `{crm}`.customers
            WHERE active = 1;
        INSERT INTO `{crm}`.customers (id, `Full Name`)
            VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Alan');
        ANALYZE TABLE `{crm}`.customers
        """
    )
    return crm, ops


def _register(runtime, crm: str, ops: str) -> int:
    return register(
        runtime,
        name=f"mysql {crm}",
        kind="mysql",
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        database=crm,
        username=MYSQL_USER,
        options={"include_schemas": [crm, ops]},
    )


def test_harvest_reads_every_detail_of_the_schema(runtime, two_databases):
    crm, ops = two_databases
    connection_id = _register(runtime, crm, ops)
    stats = sync(runtime, connection_id)
    assert stats.schemas == 2
    assert counters(stats)["tables_added"] == 3
    assert counters(stats)["columns_added"] == 13 + 4 + 2

    tables = tables_by_name(runtime, connection_id)
    customers = tables[(crm, "customers")]
    assert customers.comment == "Customers of the shop"
    assert customers.row_estimate == 3
    assert [c.ordinal for c in customers.columns] == list(range(1, 14))
    by_name = columns_of(customers)
    assert {name: c.logical_type for name, c in by_name.items()} == {
        "id": "integer",
        "Full Name": "string",
        "email": "string",
        "order": "integer",
        "active": "boolean",
        "balance": "decimal",
        "created": "datetime",
        "birth": "date",
        "wake": "time",
        "score": "float",
        "photo": "binary",
        # MariaDB stores JSON as LONGTEXT with a check; MySQL has a real JSON type.
        "profile": by_name["profile"].logical_type,
        "status": "string",
    }
    assert by_name["profile"].logical_type in ("json", "string")
    assert by_name["status"].native_type == "enum('new','gold')"
    assert by_name["balance"].native_type == "decimal(12,2)"
    assert by_name["id"].primary_key and not by_name["id"].nullable
    assert by_name["Full Name"].comment == "Given and family name"
    assert by_name["email"].default in ("'none'", "none")
    assert by_name["order"].default is None and by_name["order"].nullable

    shipments = columns_of(tables[(ops, "Shipments")])
    assert shipments["customerId"].primary_key and shipments["line"].primary_key
    fk = shipments["customerId"].foreign_key
    assert (fk.schema_, fk.table, fk.column) == (crm, "customers", "id")
    assert "größe" in shipments and shipments["select"].logical_type == "string"

    view = tables[(crm, "active_customers")]
    assert view.kind == "view" and view.row_estimate is None and view.comment is None
    assert [c.name for c in view.columns] == ["id", "Full Name"]


def test_database_alone_limits_the_harvest_to_it(runtime, two_databases):
    crm, _ops = two_databases
    connection_id = register(
        runtime,
        name="crm only",
        kind="mysql",
        host=MYSQL_HOST,
        database=crm,
        username=MYSQL_USER,
    )
    sync(runtime, connection_id)
    assert {schema for schema, _ in tables_by_name(runtime, connection_id)} == {crm}


def test_resync_diffs_keeps_ids_and_marks_removed(runtime, two_databases):
    crm, ops = two_databases
    connection_id = _register(runtime, crm, ops)
    sync(runtime, connection_id)
    before = tables_by_name(runtime, connection_id)

    mysql_execute(
        f"""
        ALTER TABLE `{crm}`.customers ADD COLUMN loyalty INT;
        ALTER TABLE `{crm}`.customers MODIFY `order` BIGINT;
        ALTER TABLE `{crm}`.customers DROP COLUMN status;
        DROP VIEW `{crm}`.active_customers;
        CREATE TABLE `{ops}`.events (id INT PRIMARY KEY, at DATETIME)
        """
    )
    stats = sync(runtime, connection_id)
    assert counters(stats) == {
        "tables_added": 1,
        "tables_changed": 0,
        "tables_removed": 1,
        "columns_added": 1 + 2,
        "columns_changed": 1,
        "columns_removed": 1 + 2,
    }
    after = tables_by_name(runtime, connection_id)
    old_cols = columns_of(before[(crm, "customers")])
    new_cols = columns_of(after[(crm, "customers")])
    assert after[(crm, "customers")].id == before[(crm, "customers")].id
    assert new_cols["order"].id == old_cols["order"].id
    assert (
        new_cols["order"].native_type == "bigint(20)" or new_cols["order"].native_type == "bigint"
    )
    assert new_cols["status"].removed and not new_cols["loyalty"].removed
    assert after[(crm, "active_customers")].removed

    assert counters(sync(runtime, connection_id)) == dict.fromkeys(counters(stats), 0)
