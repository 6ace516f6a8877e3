"""The fast decode path: attention that reads K/V through block tables, the fused per-layer kernels, and the
compiled decode step give the same greedy tokens as the eager engine, and the eager switch really is eager."""

from __future__ import annotations

import pytest
import torch

from r1stack import LLM, SamplingParams
from r1stack.engine.attention import decode_attention, decode_attention_inplace
from r1stack.engine.config import EngineArgs
from r1stack.engine.kernels import add_rms_norm, rotary, silu_mul

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "中国的首都是",
    "Once upon a time, in a small village,",
    "Q: What is 12 times 7?\nA:",
]


def _reference_decode(q, k_cache, v_cache, tables, lens, bs, scale):
    """Per sequence, per head: softmax(q k^T) v over exactly its context tokens, in float64."""
    out = []
    h, hkv = q.shape[1], k_cache.shape[1]
    for b in range(q.shape[0]):
        slots = [tables[b][p // bs] * bs + p % bs for p in range(lens[b])]
        k = k_cache[slots].double().repeat_interleave(h // hkv, dim=1)  # [L, H, D]
        v = v_cache[slots].double().repeat_interleave(h // hkv, dim=1)
        w = torch.softmax(torch.einsum("hd,lhd->hl", q[b].double(), k) * scale, dim=-1)
        out.append(torch.einsum("hl,lhd->hd", w, v))
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_table_decode_attention_matches_a_per_token_reference(dtype):
    g = torch.Generator().manual_seed(0)
    bs, nblocks, h, hkv, d = 4, 12, 6, 2, 8
    k_cache = torch.randn(nblocks * bs + 1, hkv, d, generator=g).to(dtype)
    v_cache = torch.randn(nblocks * bs + 1, hkv, d, generator=g).to(dtype)
    # Scattered, unordered blocks; ragged lengths; padded table entries point at block 0 (someone else's data).
    tables = [[7, 2, 9], [3, 0, 0], [11, 5, 1]]
    lens = [10, 1, 12]
    q = torch.randn(3, h, d, generator=g).to(dtype)
    want = _reference_decode(q, k_cache, v_cache, tables, lens, bs, 0.3)
    args = (q, k_cache, v_cache, torch.tensor(tables), torch.tensor(lens), bs, 0.3)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    for fn in (decode_attention, decode_attention_inplace):
        got = fn(*args)
        assert got.dtype == dtype and got.shape == (3, h, d)
        torch.testing.assert_close(got.double(), want, atol=tol, rtol=tol, msg=fn.__name__)


def test_fused_kernels_compute_the_unfused_formulas():
    g = torch.Generator().manual_seed(1)
    x, r, w = (torch.randn(5, 16, generator=g) for _ in range(3))
    normed, resid = add_rms_norm(x, r, w[0], 1e-5)
    s = x + r
    assert torch.equal(resid, s)
    torch.testing.assert_close(normed, w[0] * s / torch.sqrt(s.pow(2).mean(-1, keepdim=True) + 1e-5))
    gu = torch.randn(5, 32, generator=g)
    torch.testing.assert_close(silu_mul(gu), gu[:, :16] * torch.sigmoid(gu[:, :16]) * gu[:, 16:])
    # Rotary by the complex-number formula: pairs (x_i, x_{i+D/2}) rotated by angle pos * theta_i.
    q, k = torch.randn(3, 2, 8, generator=g), torch.randn(3, 1, 8, generator=g)
    ang = torch.arange(3.0)[:, None] * torch.rand(4, generator=g)[None, :]  # [T, D/2]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]
    rq, rk = rotary(q, k, cos, sin)
    for x_in, x_out in ((q, rq), (k, rk)):
        z = torch.complex(x_in[..., :4], x_in[..., 4:]) * torch.polar(torch.ones_like(ang), ang)[:, None]
        torch.testing.assert_close(x_out, torch.cat([z.real, z.imag], -1))


def test_enforce_eager_comes_from_settings_and_defaults_to_eager_on_cpu(monkeypatch, tmp_path, llm_fp32):
    from r1stack.config import Settings

    for value, want in (("false", False), ("true", True)):
        monkeypatch.setenv("R1STACK_ENGINE__ENFORCE_EAGER", value)
        assert EngineArgs.from_settings(Settings(data_dir=tmp_path)).enforce_eager is want
    monkeypatch.delenv("R1STACK_ENGINE__ENFORCE_EAGER")
    assert EngineArgs.from_settings(Settings(data_dir=tmp_path)).enforce_eager is None
    assert llm_fp32.engine.runner.decode_step is None  # None on CPU: eager, no compile at start-up


@pytest.fixture(scope="module")
def llm_eager(data_dir):
    return LLM(
        "smollm2-135m-instruct",
        dtype="float32",
        data_dir=data_dir,
        kv_cache_bytes=256 << 20,
        enforce_eager=True,
    )


def test_compiled_decode_is_token_identical_to_eager(data_dir, llm_eager):
    compiled = LLM(
        "smollm2-135m-instruct",
        dtype="float32",
        data_dir=data_dir,
        kv_cache_bytes=256 << 20,
        enforce_eager=False,
    )
    step = compiled.engine.runner.decode_step
    assert step is not None and llm_eager.engine.runner.decode_step is None
    assert step.wait(timeout=0), "the decode step did not compile: the comparison would be eager vs eager"
    params = SamplingParams(temperature=0, max_tokens=32, min_tokens=32)
    # Batched: decode steps of 5 sequences at ragged lengths, plus single-sequence steps.
    want = [o.outputs[0].token_ids for o in llm_eager.generate(PROMPTS, params)]
    got = [o.outputs[0].token_ids for o in compiled.generate(PROMPTS, params)]
    assert step.calls > 0  # decode-only steps went through it
    assert got == want
    alone = compiled.generate(PROMPTS[2], params)[0].outputs[0].token_ids
    assert alone == want[2]
