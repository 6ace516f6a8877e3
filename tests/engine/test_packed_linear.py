"""oneDNN pre-packed bf16 linears: the same numbers as nn.Linear, and the eager CPU engine uses them."""

import pytest
import torch
from torch import nn

from r1stack.engine.packed_linear import PackedLinear, can_pack, pack_linears

pytestmark = pytest.mark.skipif(
    not can_pack(torch.device("cpu"), torch.bfloat16), reason="this torch build has no oneDNN packing"
)


@pytest.mark.parametrize("rows", [1, 7, 64, 300])
@pytest.mark.parametrize("bias", [False, True])
def test_packed_equals_plain_linear(rows, bias):
    torch.manual_seed(0)
    plain = nn.Linear(96, 160, bias=bias).to(torch.bfloat16)
    packed = PackedLinear(plain)
    x = torch.randn(2, rows, 96, dtype=torch.bfloat16)
    assert torch.equal(packed(x), plain(x))  # same oneDNN arithmetic, only the weight layout differs


def test_pack_linears_replaces_half_precision_linears_only():
    model = nn.Sequential(nn.Linear(8, 16).to(torch.bfloat16), nn.Linear(16, 4))  # the fp32 one stays
    assert pack_linears(model) == 1
    assert isinstance(model[0], PackedLinear) and type(model[1]) is nn.Linear


def test_eager_bf16_engine_runs_on_packed_weights(data_dir):
    from r1stack import LLM, SamplingParams

    llm = LLM("smollm2-135m-instruct", dtype="bfloat16", data_dir=data_dir, kv_cache_bytes=32 << 20)
    layer = llm.engine.model.layers[0]
    assert isinstance(layer.mlp.gate_up_proj, PackedLinear)
    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0, max_tokens=8))
    assert "Paris" in out[0].outputs[0].text
