"""The `r1stack plan` command as a user runs it: JSON and human output, files under the data directory,
and bad input answered with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path


def test_plan_json_and_files_in_data_dir(cli, data_dir):
    r = cli("plan", "--model", "deepseek-r1", "--hardware", "8xH200", "--json", "--explain")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "fits" and d["layout"]["tp"] == 8 and d["kv_bytes_per_token"] == 70_272
    assert d["vllm_command"].startswith("vllm serve deepseek-ai/DeepSeek-R1 ")
    assert any(s["label"] == "KV tokens that fit" for s in d["steps"])
    assert d["files"] and all(Path(f).is_relative_to(data_dir) for f in d["files"])


def test_plan_human_output_with_explain(cli):
    r = cli(
        "plan",
        "--model",
        "deepseek-r1-distill-qwen-14b",
        "--hardware",
        "1xRTX4090",
        "--quant",
        "int4",
        "--context",
        "4096",
        "--concurrency",
        "2",
        "--explain",
        "--no-files",
    )
    assert r.returncode == 0, r.stderr
    assert "fits" in r.stdout and "the arithmetic" in r.stdout and "GQA: 2 x layers" in r.stdout
    assert "r1stack serve --model deepseek-r1-distill-qwen-14b" in r.stdout


def test_bad_input_is_one_line_and_exit_2(cli):
    for args in (
        ["plan", "--model", "deepseek-r1", "--hardware", "8xFOO"],
        ["plan", "--model", "no-such-model", "--hardware", "1xH100"],
        ["plan", "--model", "deepseek-r1"],
        ["plan", "--model", "deepseek-r1", "--hardware", "8xH100", "--quant", "int3"],
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0
        assert "Traceback" not in r.stderr
