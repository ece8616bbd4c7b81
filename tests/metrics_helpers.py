"""Reading Prometheus text in tests, and promtool (skipped with the reason outside CI when it
is not installed; CI installs it: .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
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
