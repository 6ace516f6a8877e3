"""Multi-head latent attention (DeepSeek-V2/V3) over the paged cache, which holds only each token's compressed
latent (kv_lora_rank) and its shared rope key (qk_rope_head_dim) -- never the expanded per-head keys and values.

Prefill expands the latent through kv_b_proj and runs ordinary attention (compute-bound, and op for op what
transformers does). Decode absorbs kv_b_proj into the query and the output instead ("weight absorption"), so it
reads the latent cache directly: scores = (q_nope W_UK) . c + q_pe . k_pe, out = (softmax . c) W_UV.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from r1stack.engine.attention import AttentionMetadata
from r1stack.engine.config import MLAConfig, ModelConfig
from r1stack.engine.fp8 import dense_weight
from r1stack.engine.models.llama import RMSNorm


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn_inv_freq(dim: int, rope: dict) -> tuple[torch.Tensor, float]:
    """YaRN's blend of interpolated and extrapolated frequencies, and its cos/sin magnitude factor."""
    base, factor = float(rope["rope_theta"]), float(rope["factor"])
    original = rope["original_max_position_embeddings"]
    beta_fast, beta_slow = rope.get("beta_fast") or 32, rope.get("beta_slow") or 1
    mscale, mscale_all = rope.get("mscale"), rope.get("mscale_all_dim")
    attention_factor = rope.get("attention_factor")
    if attention_factor is None:
        attention_factor = (
            _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
            if mscale and mscale_all
            else _yarn_mscale(factor)
        )

    def correction_dim(rotations: float) -> float:
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rope.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    extrapolate = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
    return inv_freq, float(attention_factor)


def softmax_scale(cfg: ModelConfig) -> float:
    """1/sqrt(qk head dim), times YaRN's mscale squared when the context is stretched (DeepSeek's choice)."""
    m = cfg.mla
    scale = (m.qk_nope_head_dim + m.qk_rope_head_dim) ** -0.5
    rope = m.rope_scaling
    if rope.get("rope_type", "default") != "default" and rope.get("mscale_all_dim"):
        ms = _yarn_mscale(float(rope["factor"]), float(rope["mscale_all_dim"]))
        scale *= ms * ms
    return scale


class MLARotary(nn.Module):
    """cos/sin of the rope dims (default or YaRN), built once for the serving context."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dim, self.rope = cfg.mla.qk_rope_head_dim, cfg.mla.rope_scaling
        self.theta = float(self.rope.get("rope_theta", cfg.rope_theta))
        self.interleave = cfg.mla.rope_interleave
        self.max_positions = cfg.max_position_embeddings

    def build(self, device: torch.device, max_positions: int | None = None) -> None:
        self.max_positions = min(max_positions or self.max_positions, self.max_positions)
        if self.rope.get("rope_type", "default") == "yarn":
            inv_freq, factor = _yarn_inv_freq(self.dim, {"rope_theta": self.theta, **self.rope})
        else:
            inv_freq, factor = 1.0 / (self.theta ** (torch.arange(0, self.dim, 2).float() / self.dim)), 1.0
        freqs = torch.arange(self.max_positions).float()[:, None] * inv_freq[None, :]
        if not self.interleave:
            freqs = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = (freqs.cos() * factor).to(device), (freqs.sin() * factor).to(device)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions].to(dtype).unsqueeze(1), self.sin[positions].to(dtype).unsqueeze(1)

    def apply(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.interleave:
            # Pairs (x0, x1), (x2, x3)... rotate together; the result is laid out de-interleaved, as in
            # transformers, which is harmless because q and k get the same layout.
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class MLAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: MLARotary):
        super().__init__()
        m: MLAConfig = cfg.mla
        self.h, self.r, self.rope_dim = cfg.num_heads, m.kv_lora_rank, m.qk_rope_head_dim
        self.nope, self.vd = m.qk_nope_head_dim, m.v_head_dim
        qk = self.nope + self.rope_dim
        if m.q_lora_rank is None:
            self.q_proj = nn.Linear(cfg.hidden_size, self.h * qk, bias=False)
        else:
            self.q_a_proj = nn.Linear(cfg.hidden_size, m.q_lora_rank, bias=cfg.attention_bias)
            self.q_a_layernorm = RMSNorm(m.q_lora_rank, 1e-6)
            self.q_b_proj = nn.Linear(m.q_lora_rank, self.h * qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(cfg.hidden_size, self.r + self.rope_dim, bias=cfg.attention_bias)
        self.kv_a_layernorm = RMSNorm(self.r, 1e-6)
        self.kv_b_proj = nn.Linear(self.r, self.h * (self.nope + self.vd), bias=False)
        self.o_proj = nn.Linear(self.h * self.vd, cfg.hidden_size, bias=cfg.attention_bias)
        self.scale = softmax_scale(cfg)
        self.rotary = [rotary]  # a list so that the shared module is not registered once per layer
        self.absorb = True  # decode through the absorbed weights; False expands the latent (for comparison)

    def forward(self, x, cos, sin, cache: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """x [T, hidden]; cache [num_slots + 1, kv_lora_rank + rope_dim] for this layer."""
        rot = self.rotary[0]
        if hasattr(self, "q_proj"):
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(-1, self.h, self.nope + self.rope_dim)
        q_nope, q_pe = q.split([self.nope, self.rope_dim], dim=-1)
        q_pe = rot.apply(q_pe, cos, sin)
        c, k_pe = self.kv_a_proj_with_mqa(x).split([self.r, self.rope_dim], dim=-1)
        c = self.kv_a_layernorm(c)
        k_pe = rot.apply(k_pe.unsqueeze(1), cos, sin).squeeze(1)
        cache.index_copy_(0, meta.slot_mapping, torch.cat((c, k_pe), dim=-1))

        out = x.new_empty(x.shape[0], self.h, self.vd)
        nd = meta.num_decode
        if nd:
            latent = cache[meta.decode_slots]  # [B, L, r + rope]
            mask = meta.decode_mask[:, 0]  # [B, 1, L]
            if self.absorb:
                out[:nd] = self._decode_absorbed(q_nope[:nd], q_pe[:nd], latent, mask)
            else:
                qd = torch.cat((q_nope[:nd], q_pe[:nd]), dim=-1).unsqueeze(2)  # [B, H, 1, D]
                k, v = self._expand(latent[..., : self.r], latent[..., self.r :])
                o = F.scaled_dot_product_attention(
                    qd, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask.unsqueeze(1), scale=self.scale
                )
                out[:nd] = o.squeeze(2)
        for p in meta.prefills:
            qs = (
                torch.cat((q_nope[p.start : p.end], q_pe[p.start : p.end]), dim=-1)
                .transpose(0, 1)
                .unsqueeze(0)
            )
            if p.num_cached == 0:
                k, v = self._expand(c[p.start : p.end], k_pe[p.start : p.end])
                mask, causal = None, True
            else:
                ctx = cache[p.ctx_slots]
                k, v = self._expand(ctx[:, : self.r], ctx[:, self.r :])
                rows = torch.arange(p.end - p.start, device=x.device).unsqueeze(1) + p.num_cached
                mask, causal = torch.arange(ctx.shape[0], device=x.device).unsqueeze(0) <= rows, False
            o = F.scaled_dot_product_attention(
                qs,
                k.transpose(0, 1).unsqueeze(0),
                v.transpose(0, 1).unsqueeze(0),
                attn_mask=mask,
                is_causal=causal,
                scale=self.scale,
            )
            out[p.start : p.end] = o.squeeze(0).transpose(0, 1)
        return self.o_proj(out.reshape(-1, self.h * self.vd))

    def _expand(self, c: torch.Tensor, k_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent [..., n, r] and rope key [..., n, rope] -> per-head K [..., n, H, nope+rope], V [..., n, H, vd]."""
        kv = self.kv_b_proj(c).view(*c.shape[:-1], self.h, self.nope + self.vd)
        k_nope, v = kv.split([self.nope, self.vd], dim=-1)
        k = torch.cat((k_nope, k_pe.unsqueeze(-2).expand(*k_nope.shape[:-1], self.rope_dim)), dim=-1)
        return k, v

    def _decode_absorbed(self, q_nope, q_pe, latent, mask) -> torch.Tensor:
        """q_nope [B, H, nope], q_pe [B, H, rope], latent [B, L, r + rope], mask [B, 1, L] -> [B, H, vd]."""
        w = dense_weight(self.kv_b_proj, q_nope.dtype).view(self.h, self.nope + self.vd, self.r)
        w_uk, w_uv = w[:, : self.nope], w[:, self.nope :]
        c, k_pe = latent[..., : self.r], latent[..., self.r :]
        q_lat = torch.einsum("bhn,hnr->bhr", q_nope, w_uk)  # the query, moved into latent space
        scores = (torch.matmul(q_lat, c.transpose(1, 2)) + torch.matmul(q_pe, k_pe.transpose(1, 2))).float()
        scores = (scores * self.scale).masked_fill(~mask, float("-inf"))
        o_lat = torch.matmul(torch.softmax(scores, dim=-1).to(c.dtype), c)  # [B, H, r]
        return torch.einsum("bhr,hvr->bhv", o_lat, w_uv)
