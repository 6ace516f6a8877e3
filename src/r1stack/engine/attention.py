"""Paged attention in plain PyTorch: write this step's K/V into cache slots, then attend over each sequence's slots.

The flat batch puts decode tokens (one per sequence) first and prefill chunks after them. Decodes are attended in
one batched call over their gathered slots (padded, masked); each prefill chunk is attended on its own, causally,
over its cached prefix plus itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
    decode_slots: torch.Tensor | None  # [B, L] slots of each decoding sequence's context (padded)
    decode_mask: torch.Tensor | None  # [B, 1, 1, L] True where a slot is part of the context
    prefills: list[PrefillSpan]


def paged_attention(q, k, v, k_cache, v_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """q: [T, H, D]; k, v: [T, Hkv, D]; caches: [num_slots, Hkv, D]. Returns [T, H, D]."""
    k_cache.index_copy_(0, meta.slot_mapping, k)
    v_cache.index_copy_(0, meta.slot_mapping, v)
    out = torch.empty_like(q)
    nd = meta.num_decode
    if nd:
        kk = k_cache[meta.decode_slots].transpose(1, 2)  # [B, Hkv, L, D]
        vv = v_cache[meta.decode_slots].transpose(1, 2)
        out[:nd] = _decode_attention(q[:nd], kk, vv, meta.decode_mask, scale)
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


def _decode_attention(q, k, v, mask, scale: float) -> torch.Tensor:
    """One query per sequence over its gathered context. q: [B, H, D]; k, v: [B, Hkv, L, D]; mask [B,1,1,L]."""
    if q.dtype == torch.float32:
        # fp32 keeps PyTorch's fused kernel: the numbers transformers produces, which greedy equality relies on.
        o = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        return o.squeeze(2)
    # In bf16/fp16, CPU SDPA with a mask takes a slow path (measured 16x slower than this on a 64 x 200
    # context); grouped matmuls with an fp32 softmax are fast and as accurate.
    b, h, d = q.shape
    hkv = k.shape[1]
    qg = q.view(b, hkv, h // hkv, d)
    scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale  # [B, Hkv, G, L]
    scores = scores.masked_fill(~mask, float("-inf"))
    o = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)  # [B, Hkv, G, D]
    return o.reshape(b, h, d)
