"""Each workspace member builds a wheel; fabric_core installs alone into a clean venv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = ("fabric_core", "fabric_web", "fabric_sync", "fabric_dataset", "fabric_gateway")


@pytest.fixture(scope="module")
def uv() -> str:
    binary = os.environ.get("UV") or shutil.which("uv")
    if not binary:
        if os.environ.get("CI") == "true":
            pytest.fail("uv is needed to build the packages")
        pytest.skip("uv is not installed")
    return binary


def test_every_member_builds_a_wheel(uv, tmp_path):
    result = subprocess.run(
        [uv, "build", "--all-packages", "--wheel", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheels = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.whl"))
    assert wheels == sorted(MEMBERS)


def test_fabric_core_installs_on_its_own(uv, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            str(ROOT / "packages/fabric_core"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    help_text = subprocess.run(
        [venv / "bin" / "fabric", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "demo" in help_text.stdout
    # Without the service packages, `fabric up` says what is missing instead of crashing.
    up = subprocess.run(
        [venv / "bin" / "fabric", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FABRIC_HOME": str(tmp_path / "home")},
    )
    assert up.returncode == 1 and "fabric_gateway" in up.stderr
