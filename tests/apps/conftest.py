"""What the app tests share: the offline backend, one real `r1stack serve` on the default model, and a gateway
in front of it. The process helpers are the gateway suite's own (tests/upstream/gateway_procs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "upstream"))

from gateway_procs import start_gateway, start_native  # noqa: E402


@pytest.fixture(scope="session")
def backend(data_dir):
    """The offline backend the CLI uses, on the default model."""
    from r1stack import LLM
    from r1stack.apps.backend import OfflineBackend

    llm = LLM(
        "smollm2-135m-instruct", dtype="float32", data_dir=data_dir, kv_cache_bytes=256 << 20, threads=1
    )
    return OfflineBackend(llm)


@pytest.fixture(scope="session")
def native(tmp_path_factory, data_dir):
    p = start_native(tmp_path_factory.mktemp("apps-native"), "--kv-cache-bytes", str(192 << 20))
    yield p
    p.stop()


@pytest.fixture(scope="session")
def gateway(native, tmp_path_factory, default_gguf):
    """A gateway whose served model is upstream and whose clinical triage model is a small local one, loaded
    on the gateway itself on first use (apps.triage_model); its apps.diagnosis_model names a model it does not
    serve, which diagnosis requests must refuse clearly."""
    env = {
        # A real model on a shared CPU may be slow to its first token: no hang detection here.
        "R1STACK_SERVER__UPSTREAM_READ_TIMEOUT_S": "300",
        "R1STACK_APPS__TRIAGE_MODEL": str(default_gguf),
        "R1STACK_ENGINE__DTYPE": "float32",
        "R1STACK_APPS__DIAGNOSIS_MODEL": "deepseek-r1-elsewhere",
    }
    g = start_gateway(
        tmp_path_factory.mktemp("apps-gateway"), [native.api], "--served-model-name", "smol", env=env
    )
    yield g
    g.stop()
