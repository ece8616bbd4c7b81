"""The demo's steps: start the services, register sources, sync, browse, map, build."""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx

from fabric_core.bearer import bearer_header
from fabric_core.db import create_metadata_engine
from fabric_core.demo import create_demo_sources
from fabric_core.errors import DependencyError, ServiceUnavailableError
from fabric_core.launcher import free_port, settings_env, start_services
from fabric_core.migrate import upgrade_database
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Register the sample sources through the gateway, sync them, map them, build a dataset.

    The gateway and the services run as their own processes, as ``fabric up`` starts them.
    """
    settings.ensure_home()
    # In the first sqlite root (default {home}/sqlite): the only places a sqlite source may be.
    sources = create_demo_sources(settings.resolved_sqlite_roots[0])
    for name, (path, created) in sources.items():
        echo(f"source {name:8} {'created' if created else 'reused '} {path}")

    engine = create_metadata_engine(
        settings.resolved_database_url,
        connect_timeout=settings.metadata_connect_timeout,
        statement_timeout=None,  # migrations
    )
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    admin_token = settings.resolved_admin_token()  # start_services settles the other secrets
    ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
    settings = settings.model_copy(
        update={
            **ports,
            "bind_host": "127.0.0.1",
            "orchestrator": "local",
            "sync_url": f"http://127.0.0.1:{ports['sync_port']}",
            "dataset_url": f"http://127.0.0.1:{ports['dataset_port']}",
            "job_poll_interval": 0.1,
            "auto_migrate": False,
        }
    )
    log_dir = settings.home.resolve() / "logs"
    services = start_services(settings, {**os.environ, **settings_env(settings)}, log_dir=log_dir)
    gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
    try:
        try:
            services.wait_until_ready()
        except ServiceUnavailableError as exc:
            raise ServiceUnavailableError(f"{exc.message}; see the logs in {log_dir}") from None
        echo(f"service logs in {log_dir}")
        echo(f"metadata DB {settings.resolved_database_url}")
        echo(
            f"services: gateway {gateway_url}, sync {settings.resolved_sync_url}, "
            f"dataset {settings.resolved_dataset_url}"
        )
        with httpx.Client(
            base_url=gateway_url,
            timeout=60,
            headers=bearer_header(admin_token),
            event_hooks={"response": [_refuse_errors]},
        ) as api:
            tables = _register_sync_and_browse(api, sources, echo)
            _map_and_build(api, tables, echo)
    finally:
        services.stop()


def _register_sync_and_browse(api: httpx.Client, sources, echo) -> None:
    existing = {c["name"]: c for c in api.get("/api/data-connections").json()}
    connections = {}
    for name, (path, _) in sources.items():
        connection_name = f"demo_{name}"
        if connection_name in existing:
            connections[name] = existing[connection_name]
            echo(f"connection {connection_name} already registered (id {connections[name]['id']})")
            continue
        body = {"name": connection_name, "kind": "sqlite", "database": str(path)}
        connections[name] = api.post("/api/data-connections", json=body).json()
        echo(f"registered connection {connection_name} (id {connections[name]['id']})")

    for name, connection in connections.items():
        result = api.post(f"/api/data-connections/{connection['id']}/test").json()
        echo(f"test {name:8} ok={result['ok']} {result['message']}")

    queued = {
        name: api.post(f"/api/data-connections/{c['id']}/sync").json()
        for name, c in connections.items()
    }
    for name, answer in queued.items():
        echo(f"sync {name:8} queued as {answer['dag_run_id']}")
    for name, answer in queued.items():
        job = _wait(api, answer["dag_run_id"])
        stats = job["stats"]
        if job["status"] != "success":
            raise RuntimeError(f"sync of {name} {job['status']}: {job['error']}")
        echo(
            f"sync {name:8} {job['status']}: {stats['tables']} tables, {stats['columns']} columns "
            f"(+{stats['tables_added']} ~{stats['tables_changed']} -{stats['tables_removed']} "
            f"tables, +{stats['columns_added']} ~{stats['columns_changed']} "
            f"-{stats['columns_removed']} columns)"
        )

    echo("")
    echo("catalog:")
    tables: dict[str, dict] = {}
    for name, connection in connections.items():
        for table in api.get(f"/api/data-connections/{connection['id']}/tables").json():
            detail = api.get(f"/api/tables/{table['id']}").json()
            columns = ", ".join(
                f"{c['name']} {c['logical_type']}{' PK' if c['primary_key'] else ''}"
                + (
                    f" -> {c['foreign_key']['table']}.{c['foreign_key']['column']}"
                    if c["foreign_key"]
                    else ""
                )
                for c in detail["columns"]
                if not c["removed"]
            )
            echo(f"  {name}.{table['name']} ({table['row_estimate']} rows): {columns}")
            tables[f"{name}.{table['name']}"] = detail
    return tables


# unified column -> (type, [(source table, column)]); value codes per source column.
DEMO_MAPPINGS = {
    "customer_name": (
        "string",
        [
            ("crm.customers", "full_name"),
            ("shop.Clients", "Name"),
            ("billing.customer_accounts", "holder"),
        ],
    ),
    "email": (
        "string",
        [
            ("crm.customers", "email"),
            ("shop.Clients", "Mail"),
            ("billing.customer_accounts", "email_address"),
        ],
    ),
    "country": (
        "string",
        [
            ("crm.customers", "country_code"),
            ("shop.Clients", "Country"),
            ("billing.customer_accounts", "iso_country"),
        ],
    ),
    "customer_since": (
        "date",
        [("crm.customers", "signup_date"), ("billing.customer_accounts", "opened_on")],
    ),
}
DEMO_VALUE_CODES = {
    ("shop.Clients", "Country"): {"United Kingdom": "GB", "United States": "US"},
    ("billing.customer_accounts", "iso_country"): {"40": "AT", "840": "US"},
}
DEMO_DATASET = "customers"


# A re-run finds its mappings made before: 409 there is the one refusal that is fine.
_REPEATABLE = {"/api/column-mappings", "/api/value-mappings"}


def _refuse_errors(response: httpx.Response) -> None:
    """Stop the demo at the first answer that is not a success, with the server's message."""
    status = response.status_code
    if status < 400 or (status == 409 and response.request.url.path in _REPEATABLE):
        return
    response.read()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    request = response.request
    raise DependencyError(
        f"The gateway answered {status} to {request.method} {request.url.path}: {detail}"
    )


def _map_and_build(api: httpx.Client, tables: dict[str, dict], echo) -> None:
    def column_id(table: str, column: str) -> int:
        return next(c["id"] for c in tables[table]["columns"] if c["name"] == column)

    existing = {u["name"]: u for u in api.get("/api/unified-columns").json()}
    for name, (logical_type, sources) in DEMO_MAPPINGS.items():
        unified = (
            existing.get(name)
            or api.post(
                "/api/unified-columns", json={"name": name, "logical_type": logical_type}
            ).json()
        )
        for table, column in sources:
            api.post(  # 409 on a re-run: mapped before
                "/api/column-mappings",
                json={"column_id": column_id(table, column), "unified_column_id": unified["id"]},
            )
    for (table, column), codes in DEMO_VALUE_CODES.items():
        api.post(  # 409 on a re-run: mapped before
            "/api/value-mappings",
            json={
                "column_id": column_id(table, column),
                "mappings": [{"source_value": s, "target_value": t} for s, t in codes.items()],
            },
        )
    made = {(m["column_id"], m["unified_column"]) for m in api.get("/api/column-mappings").json()}
    missing = [
        f"{table}.{column} -> {name}"
        for name, (_, sources) in DEMO_MAPPINGS.items()
        for table, column in sources
        if (column_id(table, column), name) not in made
    ]
    if missing:  # e.g. a column mapped to another unified column before (the 409 above)
        raise DependencyError(f"Column mappings the demo needs are missing: {missing}")
    echo("")
    echo(f"mapped {len(DEMO_MAPPINGS)} unified columns: {', '.join(DEMO_MAPPINGS)}")

    request = {
        "name": DEMO_DATASET,
        "selection_mode": "tables",
        "selected_tables": [
            tables[t]["id"] for t in ("crm.customers", "shop.Clients", "billing.customer_accounts")
        ],
        "auto_include_mapped_columns": True,
        "apply_value_mappings": True,
        "storage_type": "copy_to_minio",
    }
    answer = api.post("/api/datasets/unified", json=request).json()
    echo(f"dataset {DEMO_DATASET} queued as {answer['dag_run_id']}")
    job = _wait(api, answer["dag_run_id"])
    if job["status"] != "success":
        raise RuntimeError(f"dataset build {job['status']}: {job['error']}")
    dataset = api.get(f"/api/datasets/{DEMO_DATASET}").json()
    echo(
        f"dataset {DEMO_DATASET} v{dataset['current_version']}: {dataset['row_count']} rows "
        f"at {dataset['location']}"
    )
    for source, rows in job["stats"]["rows_per_source"].items():
        echo(f"  {rows} rows from {source}")
    if job["stats"]["cast_failures"]:
        echo(f"  values that did not fit their type (now null): {job['stats']['cast_failures']}")
    rows = api.get(f"/api/datasets/{DEMO_DATASET}/rows", params={"limit": 5}).json()
    names = ["customer_name", "email", "country", "customer_since", "_source_connection"]
    echo("first rows:")
    echo("  " + " | ".join(names))
    for row in rows["rows"]:
        echo("  " + " | ".join(str(row.get(n)) for n in names))


def _wait(api: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    return wait_for_job_end(
        lambda: api.get(f"/api/jobs/{job_id}").json(),
        poll_interval=0.1,
        timeout=timeout,
    )
