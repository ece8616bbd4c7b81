"""A real Prometheus scraping a live stack (gateway, sync and dataset processes, started as
`fabric up` starts them) with the repository's rules loaded: after a few jobs (two syncs, a
failing sync, a dataset build), every PromQL expression of the dashboards and the rules
evaluates without error, and those over the job metrics return data."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from conftest import TEST_ADMIN_TOKEN, TEST_SERVICE_TOKEN
from fabric_core.launcher import free_port, settings_env, start_services
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings
from metrics_helpers import (
    DASHBOARDS,
    RULES,
    dashboard_expressions,
    prometheus_tool,
    rule_expressions,
)

SCRAPE_SECONDS = 1
# Grafana's variables as the test's Prometheus makes sense of them: a rate window of several
# scrapes, every job kind.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$kind": ".*",
}
# Expressions over these families must return data once jobs have run.
JOB_METRICS = re.compile(r"\bfabric(_jobs?_|_pool_|_catalog_|:job|:jobs|:pool)")


def grafana_to_promql(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in re.sub(r"\{\{.*?\}\}", "", expression), expression
    return expression


@contextmanager
def prometheus(tmp_path: Path, targets: dict[str, int]) -> Iterator[httpx.Client]:
    """Debian's Prometheus on loopback, scraping ``targets`` with the repository's rules."""
    binary = prometheus_tool("prometheus")
    port = free_port()
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            for job, target in targets.items()
        ],
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped exactly below
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        _wait(lambda: _answers(client, "/-/ready"), 60, "Prometheus did not become ready")
        yield client
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.25)


def query(client: httpx.Client, expression: str) -> dict:
    answer = client.get("/api/v1/query", params={"query": expression})
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (expression, body)
    return body["data"]


def _stack_settings(home: Path) -> Settings:
    ports = {name: free_port() for name in ("gateway_port", "sync_port", "dataset_port")}
    settings = Settings(
        home=home,
        sqlite_roots=[home.parent],
        secret_key="test-secret-key-0123456789",
        admin_token=TEST_ADMIN_TOKEN,
        service_token=TEST_SERVICE_TOKEN,
        job_poll_interval=0.05,
        sync_url=f"http://127.0.0.1:{ports['sync_port']}",
        dataset_url=f"http://127.0.0.1:{ports['dataset_port']}",
        **ports,
    )
    settings.ensure_home()
    return settings


def _run_jobs(api: httpx.Client, source: Path) -> None:
    def job_end(job_id: str) -> dict:
        return wait_for_job_end(
            lambda: api.get(f"/api/jobs/{job_id}").json(), poll_interval=0.1, timeout=60
        )

    def create(body: dict) -> int:
        created = api.post("/api/data-connections", json=body)
        assert created.status_code == 201, created.text
        return created.json()["id"]

    ok = create({"name": "numbers", "kind": "sqlite", "database": str(source)})
    down = create({"name": "down", "kind": "postgresql", "host": "127.0.0.1", "port": free_port()})
    for connection_id in (ok, down):
        assert api.post(f"/api/data-connections/{connection_id}/test").status_code == 200
    for connection_id, expected in ((ok, "success"), (down, "failed"), (ok, "success")):
        sync = api.post(f"/api/data-connections/{connection_id}/sync")
        assert sync.status_code == 202, sync.text
        assert job_end(sync.json()["dag_run_id"])["status"] == expected
    table_id = api.get(f"/api/data-connections/{ok}/tables").json()[0]["id"]
    request = {"name": "numbers", "selection_mode": "tables", "selected_tables": [table_id]}
    build = api.post("/api/datasets/unified", json=request)
    assert build.status_code == 202, build.text
    assert job_end(build.json()["dag_run_id"])["status"] == "success"


def test_every_dashboard_and_rule_expression_evaluates_against_a_live_stack(tmp_path):
    prometheus_tool("prometheus")
    source = tmp_path / "numbers.db"
    with sqlite3.connect(source) as connection:
        connection.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
            INSERT INTO t SELECT i, 'value ' || i FROM n;
            """
        )
    connection.close()
    settings = _stack_settings(tmp_path / "home")
    services = start_services(
        settings, {**os.environ, **settings_env(settings)}, log_dir=tmp_path / "logs"
    )
    try:
        services.wait_until_ready(timeout=60)
        targets = {
            "gateway": settings.gateway_port,
            "sync": settings.sync_port,
            "dataset": settings.dataset_port,
        }
        with (
            prometheus(tmp_path / "prometheus", targets) as prom,
            httpx.Client(
                base_url=f"http://127.0.0.1:{settings.gateway_port}",
                headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"},
                timeout=60,
            ) as api,
        ):
            # Every target scraped before the jobs, so their counters' increases are seen.
            _wait(lambda: _all_up(prom, len(targets)), 60, "a target was not scraped")
            _run_jobs(api, source)
            # Scrapes after the last job, and a rule evaluation over them.
            ended = 'sum(fabric_jobs_ended_total{kind="dataset",status="success"})'
            _wait(lambda: _value(prom, ended) == 1, 30, "the build was not scraped")
            time.sleep(3 * SCRAPE_SECONDS)

            expressions = [
                (f"{path.name}: {expression}", grafana_to_promql(expression))
                for path in DASHBOARDS
                for expression in dashboard_expressions(path)
            ] + [(f"rule {name}", expression) for name, expression in rule_expressions()]
            expressions += [
                (f"{path.name}: variable {name}", expression)
                for path in DASHBOARDS
                for name, expression in variable_expressions(path)
            ]
            empty_job_queries = []
            for label, expression in expressions:
                data = query(prom, expression)
                if JOB_METRICS.search(expression) and not _is_alert(label) and not data["result"]:
                    empty_job_queries.append(label)
            assert not empty_job_queries, empty_job_queries

            assert _value(prom, 'sum(fabric_jobs_ended_total{kind="sync",status="failed"})') == 1
            assert _value(prom, 'sum(fabric_jobs_ended_total{kind="sync",status="success"})') == 2
            assert _value(prom, 'max(fabric_job_written_rows_total{kind="dataset"})') == 1000
            assert _value(prom, 'sum(fabric_source_checks_total{outcome="unreachable"})') == 1
            assert _value(prom, 'max(fabric_pool_slots{pool="sync_pool"})') == 3
            recorded = query(prom, 'fabric:job_failure_ratio:rate15m{kind="sync"}')["result"]
            assert recorded and 0 < float(recorded[0]["value"][1]) < 1

            rules = prom.get("/api/v1/rules").json()["data"]["groups"]
            unhealthy = [
                (rule["name"], rule.get("lastError"))
                for group in rules
                for rule in group["rules"]
                if rule["health"] != "ok"
            ]
            assert rules and not unhealthy, unhealthy
    finally:
        services.stop()


def variable_expressions(path: Path) -> list[tuple[str, str]]:
    """A dashboard's query variables as PromQL: Grafana's ``label_values(metric, label)``
    lists the label's values of the metric's series, as ``count by (label) (metric)`` does."""
    variables = json.loads(path.read_text())["templating"]["list"]
    found = []
    for variable in variables:
        if variable["type"] != "query":
            continue
        query_text = variable["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query_text)
        assert match, f"{variable['name']}: {query_text}"
        found.append((variable["name"], f"count by ({match[2]}) ({match[1]})"))
    return found


def _is_alert(label: str) -> bool:
    # An alert's expression holds its threshold: no data is the healthy answer.
    return label.startswith("rule Fabric")


def _all_up(prom: httpx.Client, count: int) -> bool:
    result = query(prom, "up == 1")["result"]
    return len(result) == count


def _value(prom: httpx.Client, expression: str) -> float | None:
    result = query(prom, expression)["result"]
    return float(result[0]["value"][1]) if result else None
