"""The C++ CPU paged decode attention against the PyTorch reference, in place through shuffled block tables."""

import shutil

import pytest
import torch

from r1stack.engine import cpu_attention
from r1stack.engine.attention import _gather_blocks

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler to build the kernel"
)


def reference(q, k_cache, v_cache, tables, lens, bs, scale):
    kk = _gather_blocks(k_cache.float(), tables, bs)
    vv = _gather_blocks(v_cache.float(), tables, bs)
    b, h, d = q.shape
    g = h // kk.shape[2]
    out = torch.empty(b, h, d)
    for i in range(b):
        n = int(lens[i])
        k = kk[i, :n].repeat_interleave(g, dim=1)  # [n, H, D]
        v = vv[i, :n].repeat_interleave(g, dim=1)
        p = torch.softmax(torch.einsum("hd,nhd->hn", q[i].float(), k) * scale, dim=-1)
        out[i] = torch.einsum("hn,nhd->hd", p, v)
    return out


@pytest.mark.parametrize(
    ("dtype", "heads", "kv_heads", "head_dim", "tol"),
    [
        (torch.float32, 9, 3, 64, 1e-5),
        (torch.bfloat16, 9, 3, 64, 2e-2),
        (torch.bfloat16, 16, 2, 128, 2e-2),  # the bf16 fast path with more heads than fit in registers
        (torch.float32, 4, 4, 128, 1e-5),
        (torch.float16, 6, 2, 40, 5e-3),  # a head size without a specialised loop
    ],
)
def test_kernel_matches_reference(dtype, heads, kv_heads, head_dim, tol):
    assert cpu_attention.available(), "the C++ kernel did not build on this machine"
    gen = torch.Generator().manual_seed(0)
    bs, b, w = 16, 7, 5
    slots = (b * w + 2) * bs + 1
    k_cache = torch.randn(slots, kv_heads, head_dim, generator=gen).to(dtype)
    v_cache = torch.randn(slots, kv_heads, head_dim, generator=gen).to(dtype)
    tables = torch.randperm(b * w + 2, generator=gen)[: b * w].view(b, w)
    lens = torch.tensor([1, 2, 15, 16, 17, 50, w * bs])  # block edges, one token, a full table
    q = torch.randn(b, heads, head_dim, generator=gen).to(dtype)
    got = cpu_attention.paged_decode_attention(q, k_cache, v_cache, tables, lens, bs, head_dim**-0.5)
    want = reference(q, k_cache, v_cache, tables, lens, bs, head_dim**-0.5)
    assert got.dtype == dtype and got.shape == q.shape
    torch.testing.assert_close(got.float(), want, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_reads_only_each_sequence_context(dtype):
    """Garbage (inf) past a sequence's length in its last block must not reach its output."""
    assert cpu_attention.available()
    bs, hkv, d = 16, 2, 64
    k_cache = torch.randn(4 * bs + 1, hkv, d).to(dtype)
    v_cache = torch.randn(4 * bs + 1, hkv, d).to(dtype)
    tables = torch.tensor([[2, 0]])
    lens = torch.tensor([bs + 3])
    k_cache[0 * bs + 3 : 1 * bs], v_cache[0 * bs + 3 : 1 * bs] = float("inf"), float("inf")
    q = torch.randn(1, 4, d).to(dtype)
    got = cpu_attention.paged_decode_attention(q, k_cache, v_cache, tables, lens, bs, 0.125)
    assert torch.isfinite(got).all()
    want = reference(q, k_cache, v_cache, tables, lens, bs, 0.125)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want, atol=tol, rtol=tol)


def test_store_kv_matches_index_copy():
    """The decode step's cache write, from a view into the fused qkv output as the model makes it."""
    gen = torch.Generator().manual_seed(3)
    slots, hkv, d = 40, 3, 64
    k_cache, v_cache = torch.zeros(slots, hkv, d).bfloat16(), torch.zeros(slots, hkv, d).bfloat16()
    qkv = torch.randn(5, (9 + 2 * hkv) * d, generator=gen).bfloat16()
    _, k, v = qkv.split([9 * d, hkv * d, hkv * d], dim=-1)
    k, v = k.reshape(5, hkv, d), v.view(5, hkv, d)  # v keeps qkv's row stride
    mapping = torch.tensor([7, 0, 39, 12, 13])
    want_k, want_v = k_cache.clone().index_copy_(0, mapping, k), v_cache.clone().index_copy_(0, mapping, v)
    cpu_attention._build().store_kv(k_cache, v_cache, mapping, k, v)
    assert torch.equal(k_cache, want_k) and torch.equal(v_cache, want_v)
    with pytest.raises(RuntimeError, match="slot out of range"):
        cpu_attention._build().store_kv(k_cache, v_cache, torch.tensor([0, 1, 2, 3, 40]), k, v)
