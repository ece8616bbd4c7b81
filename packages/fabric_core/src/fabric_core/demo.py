"""``fabric demo``: sample SQLite sources with differently named customer tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DEMO_SOURCES: dict[str, str] = {
    "crm": """
        CREATE TABLE customers (
            customer_id INTEGER PRIMARY KEY,
            full_name TEXT NOT NULL,
            email TEXT,
            country_code CHAR(2),
            signup_date DATE
        );
        INSERT INTO customers VALUES
            (1, 'Ada Lovelace', 'ada@example.org', 'GB', '2024-01-15'),
            (2, 'Grace Hopper', 'grace@example.org', 'US', '2024-02-01'),
            (3, 'Émilie du Châtelet', 'emilie@example.org', 'FR', '2024-03-10');
    """,
    "shop": """
        CREATE TABLE "Clients" (
            "ClientID" INTEGER PRIMARY KEY,
            "Name" VARCHAR(200) NOT NULL,
            "Mail" VARCHAR(200),
            "Country" VARCHAR(40)
        );
        CREATE TABLE orders (
            order_id INTEGER PRIMARY KEY,
            client_id INTEGER NOT NULL REFERENCES "Clients"("ClientID"),
            total NUMERIC(10, 2),
            ordered_at DATETIME
        );
        INSERT INTO "Clients" VALUES
            (10, 'Alan Turing', 'alan@example.org', 'United Kingdom'),
            (11, 'Katherine Johnson', 'katherine@example.org', 'United States');
        INSERT INTO orders VALUES
            (100, 10, 25.50, '2024-04-01 10:00:00'),
            (101, 11, 99.99, '2024-04-02 12:30:00');
    """,
    "billing": """
        CREATE TABLE customer_accounts (
            acct_no TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            email_address TEXT,
            iso_country INTEGER,
            opened_on TEXT,
            balance REAL DEFAULT 0
        );
        INSERT INTO customer_accounts VALUES
            ('A-1', 'Hedy Lamarr', 'hedy@example.org', 40, '2023-11-30', 120.0),
            ('A-2', 'Margaret Hamilton', 'margaret@example.org', 840, '2024-05-05', 0);
    """,
}


def create_demo_sources(folder: Path) -> dict[str, tuple[Path, bool]]:
    """Create the sample databases that are missing; returns name -> (path, created now)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, script in DEMO_SOURCES.items():
        path = folder / f"{name}.db"
        created = not path.exists()
        if created:
            with sqlite3.connect(path) as connection:
                connection.executescript(script)
            connection.close()
        result[name] = (path.resolve(), created)
    return result
