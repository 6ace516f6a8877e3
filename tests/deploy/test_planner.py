"""The planner's arithmetic and layouts on catalogued hardware."""

from __future__ import annotations

import pytest

from r1stack.deploy.hardware import GB, parse_hardware
from r1stack.deploy.models import catalogue
from r1stack.deploy.parallel import candidate_layouts
from r1stack.deploy.planner import FITS, NO_FIT, REDUCED, PlanRequest, plan
from r1stack.deploy.quant import weight_size
from r1stack.errors import UserError


def test_budget_adds_up():
    p = plan(PlanRequest("deepseek-r1-distill-qwen-7b", "1xL40S", context=8192, concurrency=8))
    assert p.kv_budget_per_device == (
        p.usable_per_device - p.weights_per_device - p.runtime_per_device - p.activation_per_device
    )
    assert p.kv_tokens == p.kv_budget_per_device // p.kv_bytes_per_token_per_device
    assert p.usable_per_device == int(48 * GB * 0.90)


def test_r1_native_fp8_on_8xh200_fits_with_expert_parallel():
    p = plan(PlanRequest("deepseek-r1", "8xH200"))
    assert p.quant == "fp8" and p.verdict == FITS
    assert (p.layout.tp, p.layout.pp, p.layout.ep) == (8, 1, 8)
    # MLA's latent is not split by TP: every rank holds the whole 70 KB per token
    assert p.kv_bytes_per_token_per_device == p.kv_bytes_per_token == 70_272


def test_r1_across_two_a100_nodes_uses_pipeline_parallel():
    one = plan(PlanRequest("deepseek-r1", "8xA100-80G"))
    two = plan(PlanRequest("deepseek-r1", "8xA100-80G", nodes=2))
    assert one.verdict == NO_FIT
    assert two.verdict == FITS and (two.layout.tp, two.layout.pp) == (8, 2)
    assert two.kv_bytes_per_token_per_device == 70_272 // 2  # layers split over two stages
    assert any("FP8 tensor cores" in r for r in two.reasons)  # A100 runs FP8 weight-only


def test_tp_divides_heads_and_small_models_replicate():
    smol = catalogue()["smollm2-135m-instruct"]  # 9 heads, 3 KV heads
    layouts = candidate_layouts(smol, parse_hardware("8xH100"))
    assert [lay.tp for lay in layouts] == [1]  # 2, 4, 8 do not divide 9 heads
    p = plan(PlanRequest("smollm2-135m-instruct", "8xH100"))
    assert p.layout.tp == 1 and p.layout.replicas == 8


def test_model_too_big_for_one_gpu_takes_the_smallest_tp_that_fits():
    p = plan(PlanRequest("deepseek-r1-distill-qwen-32b", "4xA100-40G", context=2048, concurrency=1))
    assert p.verdict == FITS and p.layout.tp == 2 and p.layout.replicas == 2
    q = plan(PlanRequest("deepseek-r1-distill-qwen-32b", "1xA100-40G", context=2048, concurrency=1))
    more = plan(PlanRequest("deepseek-r1-distill-qwen-32b", "4xA100-40G", context=4096, concurrency=4))
    assert more.verdict == FITS and more.layout.tp == 4  # a bigger KV need takes the next TP degree
    assert q.verdict == NO_FIT


def test_reduced_verdict_reports_what_fits():
    p = plan(
        PlanRequest("deepseek-r1-distill-qwen-14b", "1xRTX4090", quant="int8", context=8192, concurrency=16)
    )
    assert p.verdict == REDUCED
    assert p.max_concurrency_at_context == p.kv_tokens // 8192 < 16
    assert p.max_context_at_concurrency == p.kv_tokens // 16


def test_quantization_shrinks_weights_in_order():
    m = catalogue()["deepseek-r1-distill-llama-70b"]
    sizes = [weight_size(m, q).total_bytes for q in ("fp32", "bf16", "fp8", "int8", "int4", "awq")]
    assert sizes == sorted(sizes, reverse=True)
    assert abs(weight_size(m, "bf16").total_bytes / GB - 141) < 1  # ~140 GB, the guide's own figure
    # a 70B Q4_K_M GGUF is about 42.5 GB (llama.cpp: Q4_K 4.5 bpw, Q6_K 6.5625 bpw)
    assert 40 < weight_size(m, "gguf-q4_k_m").total_bytes / GB < 45


def test_fp8_is_refused_on_cpu_and_context_is_clamped():
    p = plan(PlanRequest("deepseek-r1-distill-qwen-1.5b", "cpu-64g", quant="fp8"))
    assert p.verdict == NO_FIT and any("FP8-capable GPU" in r for r in p.reasons)
    q = plan(PlanRequest("smollm2-135m-instruct", "cpu-64g", context=100_000, concurrency=1))
    assert q.context == 8192 and any("max_position_embeddings" in r for r in q.reasons)


def test_decode_bound_grows_with_bandwidth_and_shrinks_with_size():
    a = plan(PlanRequest("deepseek-r1-distill-llama-8b", "1xA100-80G"))
    h = plan(PlanRequest("deepseek-r1-distill-llama-8b", "1xH200"))
    big = plan(PlanRequest("deepseek-r1-distill-qwen-32b", "1xH200"))
    assert h.decode_tps_single > a.decode_tps_single > 0
    assert big.decode_tps_single < h.decode_tps_single
    # one stream of an 8B bf16 model on 2.039 TB/s cannot beat bandwidth / weight bytes
    assert a.decode_tps_single < 2039e9 / a.weights.total_bytes
    assert a.decode_tps_aggregate > a.decode_tps_single  # batching reuses each weight read


def test_explain_steps_cover_the_arithmetic():
    p = plan(PlanRequest("deepseek-r1", "8xH200"))
    labels = [s.label for s in p.steps]
    for want in ("weights (fp8)", "KV bytes per token", "KV tokens that fit", "decode bound, one stream"):
        assert want in labels
    kv = next(s for s in p.steps if s.label == "KV bytes per token")
    assert "61 x (512 + 64) x 2" in kv.formula and kv.value == "70,272 B"


@pytest.mark.parametrize("spec", ["8xA100", "9xFOO", "0xH100", "cpu-12x", "40xH100"])
def test_bad_hardware_is_a_user_error(spec):
    with pytest.raises(UserError):
        parse_hardware(spec)


def test_hardware_spellings():
    assert parse_hardware("8xA100-80GB").device.id == "A100-80G"
    assert parse_hardware("rtx4090").per_node == 1
    c = parse_hardware("cpu-256g", nodes=1)
    assert c.is_cpu and c.device.memory_bytes == 256 * GB


def test_alternatives_when_a_plan_does_not_fit():
    from r1stack.deploy.planner import alternatives

    alts = alternatives(PlanRequest("deepseek-r1", "8xA100-80G", quant="bf16"))
    described = [(a.quant, a.cluster.nodes) for a in alts]
    assert ("fp8", 2) in described  # the native format on a second node
    assert all(a.verdict != NO_FIT for a in alts)
    assert any(a.quant in ("awq", "int4") and a.cluster.nodes == 1 for a in alts)
    assert alternatives(PlanRequest("deepseek-r1", "8xH200")) == []  # it fits: nothing to suggest
