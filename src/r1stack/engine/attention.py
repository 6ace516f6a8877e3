"""Paged attention in plain PyTorch: write this step's K/V into cache slots, then attend over each sequence's blocks.

The flat batch puts decode tokens (one per sequence) first and prefill chunks after them. Decodes read their
context through their block tables (one batched call); each prefill chunk is attended on its own, causally, over
its cached prefix plus itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from r1stack.engine import cpu_attention


@dataclass
class PrefillSpan:
    start: int  # the chunk's first row in the flat batch
    end: int
    num_cached: int  # tokens of this sequence already in the cache before the chunk
    ctx_slots: torch.Tensor | None  # slots of all num_cached + chunk tokens; None when num_cached == 0


@dataclass
class AttentionMetadata:
    slot_mapping: torch.Tensor  # [T] where each new token's K/V goes
    num_decode: int
    decode_slots: (
        torch.Tensor | None
    )  # [B, L] slots of each decoding sequence's context (padded); MLA reads it
    decode_mask: torch.Tensor | None  # [B, 1, 1, L] True where a slot is part of the context
    prefills: list[PrefillSpan]
    block_tables: torch.Tensor | None = None  # [B, W] each decoding sequence's blocks (padded with block 0)
    context_lens: torch.Tensor | None = (
        None  # [B] tokens in each decoding sequence's context, this one included
    )
    block_size: int = 16


def paged_attention(q, k, v, k_cache, v_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """q: [T, H, D]; k, v: [T, Hkv, D]; caches: [num_slots, Hkv, D]. Returns [T, H, D]."""
    k_cache.index_copy_(0, meta.slot_mapping, k)
    v_cache.index_copy_(0, meta.slot_mapping, v)
    out = torch.empty_like(q)
    nd = meta.num_decode
    if nd:
        out[:nd] = decode_attention(
            q[:nd], k_cache, v_cache, meta.block_tables, meta.context_lens, meta.block_size, scale
        )
    for p in meta.prefills:
        qs = q[p.start : p.end].transpose(0, 1).unsqueeze(0)  # [1, H, n, D]
        if p.num_cached == 0:
            ks, vs = k[p.start : p.end], v[p.start : p.end]
            mask, causal = None, True
        else:
            ks, vs = k_cache[p.ctx_slots], v_cache[p.ctx_slots]
            n, ctx = p.end - p.start, p.ctx_slots.numel()
            rows = torch.arange(n, device=q.device).unsqueeze(1) + p.num_cached
            mask, causal = torch.arange(ctx, device=q.device).unsqueeze(0) <= rows, False
        o = F.scaled_dot_product_attention(
            qs,
            ks.transpose(0, 1).unsqueeze(0),
            vs.transpose(0, 1).unsqueeze(0),
            attn_mask=mask,
            is_causal=causal,
            scale=scale,
            enable_gqa=True,
        )
        out[p.start : p.end] = o.squeeze(0).transpose(0, 1)
    return out


def decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size: int, scale: float):
    """One query per sequence over its paged context, eagerly. q: [B, H, D]; block_tables [B, W].

    Copies each sequence's blocks whole (one contiguous row of block_size x Hkv x D per block, not one index
    per token), then attends with padding masked. Masked positions hold finite numbers (the cache starts
    zeroed, see kv_cache.py), so their zero weights cannot turn into NaN.
    """
    if q.device.type == "cpu" and q.dtype != torch.float32 and cpu_attention.ready():
        return cpu_attention.paged_decode_attention(
            q, k_cache, v_cache, block_tables, context_lens, block_size, scale
        )
    b, w = block_tables.shape
    length = int(context_lens.max())
    kk = _gather_blocks(k_cache, block_tables, block_size)[:, :length]  # [B, L, Hkv, D]
    vv = _gather_blocks(v_cache, block_tables, block_size)[:, :length]
    mask = torch.arange(length, device=q.device)[None, :] < context_lens[:, None]  # [B, L]
    if q.dtype == torch.float32:
        # fp32 keeps PyTorch's fused kernel: the numbers transformers produces, which greedy equality relies on.
        o = F.scaled_dot_product_attention(
            q.unsqueeze(2),
            kk.transpose(1, 2),
            vv.transpose(1, 2),
            attn_mask=mask[:, None, None, :],
            scale=scale,
            enable_gqa=True,
        )
        return o.squeeze(2)
    # In bf16/fp16, CPU SDPA with a mask takes a slow path (measured 16x slower than this on a 64 x 200
    # context); grouped matmuls with an fp32 softmax are fast and as accurate.
    h, d = q.shape[1], q.shape[2]
    hkv = kk.shape[2]
    qg = q.view(b, hkv, h // hkv, d)
    scores = torch.matmul(qg, kk.permute(0, 2, 3, 1)).float() * scale  # [B, Hkv, G, L]
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    o = torch.matmul(torch.softmax(scores, dim=-1).to(vv.dtype), vv.transpose(1, 2))  # [B, Hkv, G, D]
    return o.reshape(b, h, d)


def _gather_blocks(cache: torch.Tensor, block_tables: torch.Tensor, block_size: int) -> torch.Tensor:
    slots, hkv, d = cache.shape
    blocks = cache[: slots - slots % block_size].view(-1, block_size * hkv * d)
    b, w = block_tables.shape
    return blocks.index_select(0, block_tables.reshape(-1)).view(b, w * block_size, hkv, d)


def decode_attention_inplace(q, k_cache, v_cache, block_tables, context_lens, block_size: int, scale: float):
    """The same attention written as loads through the block table, for the compiled decode step only.

    Eagerly this would materialise [B, L, H, D]; under inductor each of the three expressions becomes one loop
    that reads K and V where they lie in the cache, so the step copies nothing. fp32 accumulation throughout.
    On CPU the C++ kernel does the same reads about twice as fast, and the compiled step calls it as a custom op.
    """
    if q.device.type == "cpu" and cpu_attention.ready():
        return cpu_attention.paged_decode_attention(
            q, k_cache, v_cache, block_tables, context_lens, block_size, scale
        )
    b, h, d = q.shape
    hkv = k_cache.shape[1]
    g = h // hkv
    length = block_tables.shape[1] * block_size
    pos = torch.arange(length, device=q.device)
    slots = block_tables[:, pos // block_size] * block_size + pos % block_size  # [B, L]
    k = k_cache[slots].float()  # [B, L, Hkv, D]: fused into the reduction below, never stored
    v = v_cache[slots].float()
    qg = q.float().view(b, 1, hkv, g, d)
    scores = (qg * k.unsqueeze(3)).sum(-1) * scale  # [B, L, Hkv, G]
    scores = scores.masked_fill((pos[None, :] >= context_lens[:, None])[:, :, None, None], float("-inf"))
    p = torch.softmax(scores, dim=1)
    o = (p.unsqueeze(-1) * v.unsqueeze(3)).sum(1)  # [B, Hkv, G, D]
    return o.reshape(b, h, d).to(q.dtype)
