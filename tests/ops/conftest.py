"""Fixtures of the operations tests: the repository's deploy files and the tools that check them.

A tool the checks need (PyYAML, promtool) that cannot be had skips the check on a developer's
machine and fails it under CI, so the deploy checks cannot silently disappear from CI.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (required under CI)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def yaml() -> ModuleType:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        unavailable("PyYAML is not installed")
        raise  # unreachable: unavailable() raises


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool, installed by .ci/promtool.sh (Debian's prometheus package) if missing."""
    found = shutil.which("promtool")
    if found:
        return found
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "promtool.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not path:
        unavailable(f"promtool is not available: {result.stderr.strip()[-500:]}")
    return path


def load_all(yaml: ModuleType, path: Path) -> list[dict]:
    """Every YAML document of ``path`` (empty documents dropped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]
