"""`plan --check-guide`: each of the guide's three claims gets our verdict, with the numbers."""

from __future__ import annotations

import json

import pytest

from r1stack.deploy.guide import check_guide
from r1stack.deploy.hardware import GB
from r1stack.deploy.planner import NO_FIT


@pytest.fixture(scope="module")
def checks():
    return {c.id: c for c in check_guide()}


def test_671b_bf16_does_not_fit_8xa100_80g(checks):
    c = checks["r1-671b-bf16-8xa100"]
    assert c.status == "wrong" and c.plan.verdict == NO_FIT
    assert abs(c.plan.weights.total_bytes / 1e12 - 1.34) < 0.01  # ~1.34 TB
    assert c.plan.cluster.device.memory_bytes * c.plan.cluster.total_devices == 640 * GB
    assert "1,342.1 GB" in c.finding and "640 GB" in c.finding
    fits = {(a.quant, a.cluster.describe()) for a in c.alternatives if a.verdict != NO_FIT}
    assert ("fp8", "2 nodes x 8xA100-80G") in fits and ("fp8", "8xH200-141G") in fits
    assert ("fp8", "8xA100-80G") not in fits  # even native FP8 (673 GB) exceeds one A100 node


def test_70b_bf16_does_not_fit_one_a100_without_4_bit(checks):
    c = checks["70b-bf16-1xa100"]
    assert c.status == "wrong" and c.plan.verdict == NO_FIT
    assert 139 * GB < c.plan.weights.total_bytes < 142 * GB  # ~140 GB
    by_quant = {a.quant: a.verdict for a in c.alternatives if a.cluster.total_devices == 1}
    assert by_quant["int8"] == NO_FIT and by_quant["awq"] != NO_FIT  # 8-bit is not enough; 4-bit is
    assert "141.1 GB" in c.finding and "80 GB" in c.finding and "awq on 1xA100-80G" in c.finding


def test_there_is_no_13b_r1_and_the_14b_needs_8_or_4_bit_on_a_4090(checks):
    c = checks["r1-13b-rtx4090"]
    assert c.status == "no-such-model"
    assert c.plan.model.name == "deepseek-r1-distill-qwen-14b"
    assert c.plan.verdict == NO_FIT  # bf16 14B (29.5 GB) > 24 GB
    assert {a.quant for a in c.alternatives if a.verdict != NO_FIT} == {"int8", "int4", "gguf-q4_k_m"}
    assert "no deepseek-r1-13b" in c.finding and "deepseek-r1-distill-qwen-14b (14.77B)" in c.finding
    assert "29.5 GB against 24 GB" in c.finding and "int8 on 1xRTX4090" in c.finding


def test_check_guide_cli_prints_every_verdict(cli):
    r = cli("plan", "--check-guide", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert [rows[k]["status"] for k in ("r1-671b-bf16-8xa100", "70b-bf16-1xa100", "r1-13b-rtx4090")] == [
        "wrong",
        "wrong",
        "no-such-model",
    ]
    human = cli("plan", "--check-guide")
    assert human.returncode == 0
    assert human.stdout.count("does-not-fit") >= 3 and "no-such-model" in human.stdout
