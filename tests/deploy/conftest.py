"""Shared fixtures for the deploy tests: a private data directory and a way to run the real `r1stack` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("R1STACK_DATA_DIR", str(d))
    from r1stack.config import get_settings

    get_settings.cache_clear()
    yield d
    get_settings.cache_clear()


@pytest.fixture
def cli(data_dir):
    """Run `r1stack ARGS...` as a real process with the private data directory."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "R1STACK_DATA_DIR": str(data_dir), "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-c", "from r1stack.cli.main import main; main()", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=REPO,
        )

    return run


@pytest.fixture
def smollm2_data_dir() -> Path:
    """A data directory where `r1stack pull smollm2-135m-instruct` has run (the Makefile does before tests)."""
    for root in (os.environ.get("R1STACK_DATA_DIR"), REPO / "r1stack-data"):
        if root and (Path(root) / "models" / "smollm2-135m-instruct" / ".complete").exists():
            return Path(root)
    pytest.skip("smollm2-135m-instruct is not installed: run `r1stack pull smollm2-135m-instruct`")
