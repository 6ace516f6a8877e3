"""Shared fixtures: the data directory with the default model (installed once by `make test`), and a loaded
fp32 engine that every engine test can share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("R1STACK_TEST_DATA_DIR", ROOT / "r1stack-data"))
DEFAULT_MODEL = "smollm2-135m-instruct"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# One intra-op thread for everything computed in the test process: OpenMP threads that share two cores with
# server subprocesses stall at every barrier (we measured matmuls 30x slower), and a test run must not depend
# on what else the machine is doing.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from r1stack.engine.store import pull

    pull(DEFAULT_MODEL, DATA_DIR)  # a no-op once installed
    return DATA_DIR


@pytest.fixture(scope="session")
def default_gguf(data_dir: Path) -> Path:
    from r1stack.engine.store import resolve

    return resolve(DEFAULT_MODEL, data_dir).path


@pytest.fixture(scope="session")
def llm_fp32(data_dir):
    from r1stack import LLM

    return LLM(DEFAULT_MODEL, dtype="float32", data_dir=data_dir, kv_cache_bytes=512 << 20)
