"""The monitoring files under deploy/ (Prometheus, Alertmanager, Grafana, the StatsD
exporter's mapping) checked by Prometheus' own tools, and the three apps' /metrics by
``promtool check metrics``. Evaluated against a live stack: test_prometheus_live.py."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import httpx
import yaml
from metrics_helpers import (
    DASHBOARDS,
    DEPLOY,
    PROMETHEUS,
    ROOT,
    RULES,
    dashboard_expressions,
    prometheus_tool,
    promtool,
    rule_expressions,
)
from service_helpers import SERVICE_HEADERS, running_stack, wait_for_job

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_prometheus_config_and_rules_pass_promtool():
    checked = promtool("check", "config", str(PROMETHEUS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(RULES)} rule files found" in checked.stdout
    rules = promtool("check", "rules", *map(str, RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    names = {name for name, _ in rule_expressions()}
    assert {
        "FabricServiceDown",
        "FabricJobFailureRatioHigh",
        "FabricQueueWaitHigh",
        "FabricPoolSaturated",
        "FabricCircuitOpen",
    } <= names


def test_the_alerts_fire_on_made_up_series():
    # Service down, pool saturation counted once over replicas, failure ratio, circuit open,
    # queue wait: tests/prometheus/fabric_rules_test.yml.
    tested = promtool("test", "rules", str(ROOT / "tests" / "prometheus" / "fabric_rules_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_alertmanager_config_passes_amtool():
    checked = subprocess.run(
        [prometheus_tool("amtool"), "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_prometheus_scrapes_the_compose_services_on_their_ports():
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = COMPOSE["services"]
    for job in ("gateway", "sync", "dataset", "airflow"):
        host, port = targets[job].split(":")
        service = services[host]
        exposed = [str(p) for p in service.get("expose", [])] + service.get("ports", [])
        assert any(str(entry).split("/")[0].endswith(port) for entry in exposed), job
    assert targets["airflow"].startswith("statsd-exporter:")
    airflow_env = services["airflow-scheduler"]["environment"]
    assert airflow_env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"
    assert (
        f"{airflow_env['AIRFLOW__METRICS__STATSD_PORT']}/udp"
        in services["statsd-exporter"]["expose"]
    )
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"] and "alertmanager" in services


def test_grafana_provisions_the_prometheus_source_and_the_dashboards():
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "fabric.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in COMPOSE["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == providers["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert DASHBOARDS
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == source["uid"]
        titles = {p["title"] for p in board["panels"] if p["type"] == "row"}
        assert {"Jobs", "Queues and pools", "Throughput", "Failures", "Service health"} <= titles
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]
                assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_compose_mounts_only_files_that_exist():
    for name in ("prometheus", "alertmanager", "grafana", "statsd-exporter"):
        for volume in COMPOSE["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_every_airflow_metric_the_dashboards_read_is_mapped_from_statsd():
    mapping = yaml.safe_load((DEPLOY / "statsd-exporter" / "mapping.yml").read_text())
    produced = []
    for rule in mapping["mappings"]:
        # A "${1}" in a name is the glob's one "*": the names it can produce form a pattern.
        pattern = re.escape(rule["name"]).replace(re.escape("${1}"), "[a-z_]+")
        produced.append(re.compile(pattern))
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:${}]*", rule["name"]), rule["name"]
    read = {
        name
        for path in DASHBOARDS
        for expression in dashboard_expressions(path)
        for name in re.findall(r"\bairflow_[a-z_]+", expression)
    }
    read |= {n for _, e in rule_expressions() for n in re.findall(r"\bairflow_[a-z_]+", e)}
    assert read, "the dashboard shows Airflow's pools and failures"
    for name in read:
        assert any(p.fullmatch(name) for p in produced), f"{name} is not produced by a mapping"


def test_the_apps_metrics_pass_promtool_check_metrics(settings, tmp_path):
    prometheus_tool("promtool")
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        connection.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    connection.close()
    with running_stack(settings) as api:
        created = api.post(
            "/api/data-connections", json={"name": "s", "kind": "sqlite", "database": str(path)}
        ).json()
        api.post(f"/api/data-connections/{created['id']}/test")
        sync = api.post(f"/api/data-connections/{created['id']}/sync").json()
        assert wait_for_job(api, sync["dag_run_id"])["status"] == "success"
        table_id = api.get(f"/api/data-connections/{created['id']}/tables").json()[0]["id"]
        request = {"name": "d", "selection_mode": "tables", "selected_tables": [table_id]}
        build = api.post("/api/datasets/unified", json=request).json()
        assert wait_for_job(api, build["dag_run_id"])["status"] == "success"

        runtime_settings = api.app.state.runtime.settings
        scrapes = {"gateway": api.get("/metrics").text}
        for service in ("sync", "dataset"):
            url = runtime_settings.service_url(service)
            scrapes[service] = httpx.get(f"{url}/metrics", headers=SERVICE_HEADERS).text

    assert "fabric_jobs_queued{" in scrapes["gateway"]
    assert "fabric_job_run_duration_seconds_bucket{" in scrapes["sync"]
    assert 'fabric_job_written_rows_total{kind="dataset"}' in scrapes["dataset"]
    for name, text in scrapes.items():
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
        assert checked.stdout.strip() == "" and checked.stderr.strip() == "", name
