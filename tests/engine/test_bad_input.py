"""Bad input gets one clear error: from the API a UserError, from the CLI exit code 2 and one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r1stack import LLM, SamplingParams
from r1stack.errors import UserError


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_k": -5}, "top_k"),
        ({"min_p": 2}, "min_p"),
    ],
)
def test_invalid_sampling_values(kwargs, word):
    with pytest.raises(UserError, match=word):
        SamplingParams(**kwargs)


def test_prompt_longer_than_context(data_dir):
    llm = LLM(
        "smollm2-135m-instruct", dtype="float32", data_dir=data_dir, max_model_len=64, kv_cache_bytes=16 << 20
    )
    with pytest.raises(UserError, match="context holds 64"):
        llm.generate("word " * 200, SamplingParams(max_tokens=4))


def test_unknown_model_name(data_dir):
    with pytest.raises(UserError, match="unknown model"):
        LLM("no-such-model", data_dir=data_dir)


def test_truncated_gguf(default_gguf, tmp_path, data_dir):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(default_gguf.read_bytes()[: 5 << 20])
    with pytest.raises(UserError, match="damaged or truncated"):
        LLM(str(broken), data_dir=data_dir)


def test_corrupt_safetensors_and_unsupported_architecture(tmp_path, data_dir):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "mamba", "architectures": ["MambaForCausalLM"]}))
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="unsupported architecture"):
        LLM(str(d), data_dir=data_dir)


def _cli(*args: str, env_data_dir) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, R1STACK_DATA_DIR=str(env_data_dir))
    return subprocess.run(
        [sys.executable, "-m", "r1stack.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_errors_are_one_line_exit_2(data_dir, tmp_path):
    r = _cli("generate", "hi", "--model", "no-such-model", env_data_dir=data_dir)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown model" in r.stderr and "Traceback" not in r.stderr
    r = _cli("generate", "hi", "--temperature", "-1", env_data_dir=data_dir)
    assert r.returncode == 2 and "temperature" in r.stderr and "Traceback" not in r.stderr


def test_cli_generate_and_models(data_dir):
    r = _cli(
        "generate",
        "The capital of France is",
        "--max-tokens",
        "5",
        "--dtype",
        "float32",
        env_data_dir=data_dir,
    )
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    r = _cli("models", env_data_dir=data_dir)
    assert r.returncode == 0 and "deepseek-r1-distill-qwen-7b" in r.stdout


def test_extreme_penalty_values_cannot_kill_the_engine(llm_fp32):
    with pytest.raises(UserError, match="repetition_penalty"):
        SamplingParams(repetition_penalty=5e-324)

    def explode(output_ids, logits):
        logits[:] = float("nan")
        return logits

    out = llm_fp32.generate("Hello", SamplingParams(max_tokens=3, logits_processors=[explode]))[0]
    assert len(out.outputs[0].token_ids) == 3
    ok = llm_fp32.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=3))[0]
    assert ok.outputs[0].finish_reason == "length"
