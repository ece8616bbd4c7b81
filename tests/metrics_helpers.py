"""Reading Prometheus text in tests, the monitoring files under deploy/, and Prometheus' tools
(skipped with the reason outside CI when they are not installed; CI installs them: .ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def wait_for_value(
    scrape: Callable[[], str], name: str, expected: float, timeout: float = 10, **labels: str
) -> str:
    """Scrape until ``name{labels}`` is ``expected`` (a job is counted just after it ends);
    returns the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape()
        if value(text, name, **labels) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def prometheus_tool(name: str) -> str:
    """The path of ``name`` (promtool, prometheus, amtool): Debian's ``prometheus`` and
    ``prometheus-alertmanager`` packages. Absent: a failure in CI, else a skip."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [prometheus_tool("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def dashboard_expressions(path: Path) -> list[str]:
    """Every PromQL expression of a dashboard's panels (rows' nested panels too)."""
    board = json.loads(path.read_text())

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    return [t["expr"] for p in panels(board["panels"]) for t in p.get("targets", [])]


def rule_expressions() -> list[tuple[str, str]]:
    """(record or alert name, expression) of every rule file."""
    return [
        (rule.get("record") or rule["alert"], rule["expr"])
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
