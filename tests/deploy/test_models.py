"""Parameter counts and KV sizes computed from the catalogue's architectures against published figures and
against the parameter counts of the same architectures built by transformers."""

from __future__ import annotations

import json

import pytest
import torch

from r1stack.deploy.models import ModelArch, catalogue, catalogue_entry, resolve_model
from r1stack.errors import UserError

MODELS = catalogue()


@pytest.mark.parametrize("model_id", list(MODELS))
def test_total_params_within_5_percent_of_published(model_id):
    m = MODELS[model_id]
    published = m.published["total_params"]
    assert abs(m.param_count() - published) / published < 0.05, (m.param_count(), published)


def test_r1_is_671b_total_37b_active():
    r1 = MODELS["deepseek-r1"]
    assert abs(r1.param_count() / 671e9 - 1) < 0.05
    assert abs(r1.param_count(active=True) / 37e9 - 1) < 0.05
    # MoE: the active share is a small fraction of the total
    assert r1.param_count(active=True) < 0.06 * r1.param_count()


def test_distill_sizes_span_the_family():
    sizes = {k: MODELS[k].param_count() / 1e9 for k in MODELS if "distill" in k}
    assert (
        sizes["deepseek-r1-distill-qwen-1.5b"]
        < sizes["deepseek-r1-distill-qwen-7b"]
        < sizes["deepseek-r1-distill-llama-8b"]
        < sizes["deepseek-r1-distill-qwen-14b"]
        < sizes["deepseek-r1-distill-qwen-32b"]
        < sizes["deepseek-r1-distill-llama-70b"]
    )
    # "1.5B" names Qwen2.5-Math-1.5B, which ties its head; the distill unties it (151936 x 1536 more).
    q15 = MODELS["deepseek-r1-distill-qwen-1.5b"]
    assert abs((q15.param_count() - q15.vocab_size * q15.hidden_size) / 1.54e9 - 1) < 0.01


def test_r1_mla_cache_is_about_70_kb_per_token_in_bf16():
    r1 = MODELS["deepseek-r1"]
    assert r1.is_mla
    assert r1.kv_bytes_per_token("bfloat16") == 61 * (512 + 64) * 2 == 70_272
    assert abs(r1.kv_bytes_per_token("bfloat16") / 70e3 - 1) < 0.05
    # what the cache would be without MLA (128 heads x (128 + 64) key and 128 value dims): ~70x more
    mha = 61 * 128 * (192 + 128) * 2
    assert mha / r1.kv_bytes_per_token() > 60


def test_gqa_kv_bytes_follow_the_formula():
    m = MODELS["deepseek-r1-distill-llama-70b"]
    assert m.kv_bytes_per_token("bfloat16") == 2 * 80 * 8 * 128 * 2
    s = MODELS["smollm2-135m-instruct"]
    assert s.kv_bytes_per_token("float32") == 2 * 30 * 3 * 64 * 4


def _transformers_count(model_id: str, layers: int | None = None) -> tuple[int, ModelArch]:
    from dataclasses import replace

    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = {
        k: v
        for k, v in catalogue_entry(model_id)["config"].items()
        if k not in ("quantization_config", "architectures", "torch_dtype")
    }
    model_type = cfg.pop("model_type")
    arch = MODELS[model_id]
    if layers:
        cfg["num_hidden_layers"] = layers
        arch = replace(arch, num_layers=layers)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
    n = sum(p.numel() for p in model.parameters())
    # DeepSeek-V3's router score-correction bias is a buffer in transformers but a tensor in the checkpoint
    n += sum(b.numel() for name, b in model.named_buffers() if "e_score_correction_bias" in name)
    return n, arch


@pytest.mark.parametrize(
    "model_id",
    [
        "smollm2-135m-instruct",
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
        "deepseek-r1-distill-llama-8b",
        "deepseek-r1-distill-qwen-14b",
        "deepseek-r1-distill-qwen-32b",
        "deepseek-r1-distill-llama-70b",
    ],
)
def test_param_count_equals_transformers_model(model_id):
    n, arch = _transformers_count(model_id)
    assert arch.param_count() == n


def test_deepseek_v3_param_count_equals_transformers_model():
    # 5 layers (3 dense + 2 MoE) keep the meta-device build quick; the per-layer formulas are what is checked
    n, arch = _transformers_count("deepseek-r1", layers=5)
    assert arch.param_count() == n


def test_resolve_model_by_id_repo_and_folder(tmp_path):
    assert resolve_model("DeepSeek-R1").name == "deepseek-r1"
    assert resolve_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").name == "deepseek-r1-distill-qwen-7b"
    (tmp_path / "config.json").write_text(json.dumps(catalogue_entry("smollm2-135m-instruct")["config"]))
    local = resolve_model(str(tmp_path))
    assert local.param_count() == MODELS["smollm2-135m-instruct"].param_count()


def test_unknown_model_is_a_user_error_with_a_suggestion():
    with pytest.raises(UserError) as e:
        resolve_model("deepseek-r1-distill-qwen-13b")
    assert "deepseek-r1-distill-qwen-1" in e.value.message and "Known:" in e.value.message


def test_config_without_required_fields_is_a_user_error():
    with pytest.raises(UserError, match="hidden_size"):
        ModelArch.from_hf_config({"num_attention_heads": 4}, name="broken")


def test_every_catalogue_entry_names_its_sources():
    for mid in MODELS:
        e = catalogue_entry(mid)
        assert e["source"].startswith("https://huggingface.co/") and e["source"].endswith("config.json")
        assert e["checked_against"] and e["published"]["source"]
