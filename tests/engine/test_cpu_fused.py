"""engine/cpu_fused.py's C++ kernels against kernels.py, the PyTorch formulas they replace, at decode and prefill
sizes and at a head size that takes the scalar loops."""

import shutil

import pytest
import torch

from r1stack.engine import cpu_fused, kernels

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler to build the kernels"
)


def bf16_ulps(got: torch.Tensor, want: torch.Tensor) -> int:
    """The largest difference in bf16 steps (adjacent bf16 values of one sign differ by one in their bits)."""
    a, b = got.view(torch.int16).int(), want.view(torch.int16).int()
    return int((a - b).abs().max())


@pytest.mark.parametrize("rows", [1, 16, 64, 300])
@pytest.mark.parametrize(("dim", "head_dim"), [(576, 64), (40, 20)])
def test_fused_kernels_match_pytorch(rows, dim, head_dim):
    assert cpu_fused.available(), "the C++ kernels did not build on this machine"
    g = torch.Generator().manual_seed(rows)
    bf = lambda *shape: torch.randn(*shape, generator=g).bfloat16()  # noqa: E731
    ops = cpu_fused._ops
    x, res, w = bf(rows, dim), bf(rows, dim), bf(dim)
    got_n, got_s = ops.add_rms_norm(x, res, w, 1e-5)
    want_n, want_s = kernels.add_rms_norm(x, res, w, 1e-5)
    assert torch.equal(got_s, want_s)  # the residual sum is one rounding either way
    assert bf16_ulps(got_n, want_n) <= 1  # the fp32 sum of squares in another order
    assert bf16_ulps(ops.rms_norm(x, w, 1e-5), kernels.rms_norm(x, w, 1e-5)) <= 1

    heads, kv_heads = 3, 1
    q, k = bf(rows, heads, head_dim), bf(rows, kv_heads, head_dim)
    ang = torch.rand(rows, head_dim // 2, generator=g) * 100
    cos, sin = (torch.cat([f(ang)] * 2, -1)[:, None].bfloat16() for f in (torch.cos, torch.sin))
    for got, want in zip(ops.rotary(q, k, cos, sin), kernels.rotary(q, k, cos, sin), strict=True):
        assert torch.equal(got, want)

    gate_up = bf(rows, 2 * dim) * 4
    assert bf16_ulps(ops.silu_mul(gate_up), kernels.silu_mul(gate_up)) <= 1


def test_argmax_matches_torch():
    from r1stack.engine import cpp_build, cpu_sample

    assert cpp_build.module() is not None
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 1003, generator=g).bfloat16()  # a vocabulary that is not a multiple of 16
    logits[1, 7] = logits[1, 900] = 50.0  # a tie: the first position wins
    logits[2, 1002] = 60.0  # the maximum in the scalar tail
    logits[3, 11] = logits[3, 500] = float("nan")  # NaN counts as the largest, as torch.argmax has it
    logits[4] = float("-inf")
    want = logits.float().argmax(dim=-1).tolist()
    assert cpu_sample.argmax(logits) == want
    assert want[1] == 7 and want[2] == 1002 and want[3] == 11
