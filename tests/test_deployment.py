"""compose.yaml and the Dockerfiles, checked offline (there is no Docker engine here):
the compose schema, and that every command, port and variable they use exists in the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose
from fabric_core.airflow_stack import COMPONENTS
from fabric_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())  # applies the << merge keys
SERVICES = COMPOSE["services"]
FABRIC_SERVICES = {"gateway": 8004, "sync": 8005, "dataset": 8006}
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]


def _console_scripts() -> set[str]:
    scripts: set[str] = set()
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


def _interpolated(text: str) -> str:
    """``text`` with compose's ``${VAR:-default}`` / ``${VAR:?error}`` replaced as ``docker
    compose`` does with the .env.example values (``$${VAR}`` is left to the container)."""
    example = _example()

    def value(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if operator == ":-" and name not in example:
            return rest
        return example[name]

    return re.sub(r"(?<!\$)\$\{(\w+)(?:(:[-?])([^}]*))?\}", value, text)


def test_compose_file_follows_the_compose_specification():
    parsed = PyCompose.from_json(_interpolated(json.dumps(COMPOSE)))
    assert set(parsed.service_names()) == set(SERVICES)
    for required in (
        "postgres",
        "minio",
        "minio-bucket",
        "redis",
        "gateway",
        "sync",
        "dataset",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "statsd-exporter",
        "prometheus",
        "alertmanager",
        "grafana",
    ):
        assert required in SERVICES


def test_dependencies_exist_and_their_conditions_can_be_met():
    for name, service in SERVICES.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert SERVICES[target].get("restart") == "no", f"{target} must run once"


def test_fabric_services_run_commands_and_ports_the_code_has():
    scripts = _console_scripts()
    defaults = Settings()
    for name, port in FABRIC_SERVICES.items():
        command = SERVICES[name]["command"]
        assert command == [f"fabric-{name}"] and command[0] in scripts
        assert getattr(defaults, f"{name}_port") == port
        exposed = SERVICES[name].get("ports", []) + SERVICES[name].get("expose", [])
        assert any(str(port) in str(entry) for entry in exposed), name
        assert f"{port}/health" in json.dumps(SERVICES[name]["healthcheck"])
    assert SERVICES["fabric-migrate"]["command"][:3] == ["fabric", "db", "upgrade"]
    assert "fabric" in scripts


def test_every_fabric_variable_is_a_setting():
    fields = {f"FABRIC_{name.upper()}" for name in Settings.model_fields}
    used = {
        key
        for service in SERVICES.values()
        for key in (service.get("environment") or {})
        if key.startswith("FABRIC_")
    }
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used and used <= fields, used - fields
    assert {v for v in example if v.startswith("FABRIC_")} <= fields
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "compose.yaml").read_text()))
    assert required <= example, required - example


def test_airflow_services_use_real_commands_and_settings():
    pytest.importorskip("airflow", reason="the airflow dependency group is not installed")
    commands = {
        name: SERVICES[name]["command"]
        for name in AIRFLOW_SERVICES
        # Services with their own entrypoint run a script, not the airflow CLI.
        if SERVICES[name].get("command") and "entrypoint" not in SERVICES[name]
    }
    assert "airflow db migrate" in SERVICES["airflow-init"]["command"][0]
    assert {c[0] for c in commands.values()} >= {args[0] for args in COMPONENTS.values()}
    options = sorted(
        {
            key
            for name in AIRFLOW_SERVICES
            for key in SERVICES[name]["environment"]
            if key.startswith("AIRFLOW__")
        }
    )
    probe = """
import json, sys
from airflow.cli.cli_parser import get_parser
from airflow.configuration import conf
commands, options = json.loads(sys.argv[1]), json.loads(sys.argv[2])
parser = get_parser()
bad_commands = []
for command in commands:
    try:
        parser.parse_known_args(command)
    except SystemExit:
        bad_commands.append(command)
known = conf.configuration_description
def exists(option):
    section, key = option.removeprefix("AIRFLOW__").lower().split("__", 1)
    return key in known.get(section, {}).get("options", {})
bad_options = [o for o in options if not exists(o)]
print(json.dumps({"commands": bad_commands, "options": bad_options}))
"""
    env = {**os.environ, "AIRFLOW_HOME": "/tmp/fabric-compose-check"}
    result = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(list(commands.values())), json.dumps(options)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"commands": [], "options": []}


@pytest.mark.parametrize("service", ["gateway", "sync", "dataset"])
def test_service_dockerfiles_are_multi_stage_locked_and_unprivileged(service):
    dockerfile = ROOT / "packages" / f"fabric_{service}" / "Dockerfile"
    assert SERVICES[service]["build"]["dockerfile"] == str(dockerfile.relative_to(ROOT))
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    assert f"uv sync --frozen --no-dev --no-editable --package fabric-{service}" in text
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
    assert f'CMD ["fabric-{service}"]' in text


def test_airflow_image_has_the_dags_and_fabric_core():
    text = (ROOT / "airflow" / "Dockerfile").read_text()
    assert "apache/airflow:3.3" in text and "airflow/dags" in text
    assert "uv build --package fabric-core" in text
    assert all(
        SERVICES[name]["build"]["dockerfile"] == "airflow/Dockerfile" for name in AIRFLOW_SERVICES
    )


PUBLISHED = {"gateway": "8004", "airflow-apiserver": "8080", "grafana": "3000"}
SECRET_VARIABLE = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


def test_only_the_gateway_airflow_ui_and_grafana_are_published_on_the_publish_host():
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert set(published) == set(PUBLISHED)
    for name, port in PUBLISHED.items():
        assert published[name] == [f"${{PUBLISH_HOST:-127.0.0.1}}:{port}:{port}"]
    for name in ("sync", "dataset", "prometheus", "alertmanager", "statsd-exporter"):
        assert "ports" not in SERVICES[name] and SERVICES[name]["expose"]
    example = _example()
    assert example["PUBLISH_HOST"] == "127.0.0.1"


def _example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_secret_is_required_from_env_and_its_placeholder_is_refused():
    from fabric_core.errors import ConfigurationError
    from fabric_core.secret_files import checked_secret

    text = (ROOT / "compose.yaml").read_text()
    variables = set(re.findall(r"(?<!\$)\$\{(\w+)", text))  # $${X}: the container shell's
    secrets = {name for name in variables if SECRET_VARIABLE.search(name)}
    assert {
        "FABRIC_SECRET_KEY",
        "FABRIC_SERVICE_TOKEN",
        "FABRIC_ADMIN_TOKEN",
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "AIRFLOW_SECRET_KEY",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    } <= secrets
    for name in secrets | {"AIRFLOW_USERNAME"}:
        uses = re.findall(rf"(?<!\$)\$\{{{name}(:.)?", text)
        assert uses and all(use == ":?" for use in uses), f"{name} must be required: {uses}"
    example = _example()
    for name in secrets:
        with pytest.raises(ConfigurationError, match="placeholder"):
            checked_secret(name, example[name])
    # The services, the gateway and Airflow's workers all get the service token; only the
    # gateway gets the admin token.
    for name in ("gateway", "sync", "dataset", "airflow-worker", "airflow-setup"):
        assert SERVICES[name]["environment"]["FABRIC_SERVICE_TOKEN"].startswith(
            "${FABRIC_SERVICE_TOKEN:?"
        )
    holders = {n for n, s in SERVICES.items() if "FABRIC_ADMIN_TOKEN" in s.get("environment", {})}
    assert holders == {"gateway"}


def test_airflow_has_no_default_login():
    environment = SERVICES["airflow-apiserver"]["environment"]
    assert environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].startswith(
        "${AIRFLOW_USERNAME:?"
    )
    assert environment["FABRIC_AIRFLOW_PASSWORD"].startswith("${AIRFLOW_PASSWORD:?")
    assert "airflow/airflow" not in (ROOT / "compose.yaml").read_text().replace(" ", "")
    init = SERVICES["airflow-init"]["command"][0]
    assert 'os.environ["FABRIC_AIRFLOW_USERNAME"]' in init
