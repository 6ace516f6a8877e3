"""The AWQ scale search on a small random Llama: folding keeps the float function, and the searched scales
quantize no worse than plain round-to-nearest."""

from __future__ import annotations

import pytest
import torch

from r1stack.engine.config import ModelConfig
from r1stack.engine.models.llama import LlamaForCausalLM
from r1stack.engine.quant.awq import awq_search, prefill_hidden, search_scale
from r1stack.engine.quant.formats import fake_int4


def _tiny(heads: int, kv_heads: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = ModelConfig(
        architecture="llama",
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=64 // heads,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        attention_bias=False,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # uneven norm weights give the activations outlier channels, as real models have
        for layer in model.layers:
            layer.input_layernorm.weight.copy_(torch.rand(64) * 4 + 0.1)
            layer.post_attention_layernorm.weight.copy_(torch.rand(64) * 4 + 0.1)
    model.lm_head.weight = model.embed_tokens.weight
    return model.eval()


@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (4, 4)])
def test_folding_the_scales_keeps_the_float_model(heads, kv_heads):
    model = _tiny(heads, kv_heads)
    calib = [torch.randint(0, 97, (48,)).tolist() for _ in range(3)]
    before = prefill_hidden(model, calib[0]).clone()
    summary = awq_search(model, calib, group_size=32)
    assert summary["groups"] == 2 * (3 + (heads == kv_heads))  # v -> o only without grouped-query attention
    assert torch.allclose(prefill_hidden(model, calib[0]), before, atol=1e-4, rtol=1e-4)
    assert summary["awq_output_mse"] <= summary["rtn_output_mse"]


def test_search_beats_round_to_nearest_with_outlier_channels():
    torch.manual_seed(1)
    x = torch.randn(256, 128)
    x[:, :4] *= 30  # a few salient input channels, the case AWQ exists for
    w = torch.randn(64, 128) * 0.05
    s, loss, rtn = search_scale(w, x, x.abs().mean(0), 32)
    assert loss < 0.9 * rtn
    recomputed = (x @ (fake_int4(w * s, 32) / s).t() - x @ w.t()).pow(2).mean().item()
    assert recomputed == pytest.approx(loss, rel=1e-4)
