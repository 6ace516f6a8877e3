"""Llama-architecture decoder (SmolLM2, R1-Distill-Llama; Qwen2 is the same with q/k/v biases).

Numerics follow transformers' implementation op for op (fp32 RMSNorm, rotate-half RoPE) so that greedy output
matches it token for token. q/k/v and gate/up are fused into one matmul each; the loader fills the slices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1stack.engine.attention import AttentionMetadata, paged_attention
from r1stack.engine.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Rotary(nn.Module):
    """cos/sin for every position, computed once in fp32 exactly as transformers computes them per call."""

    def __init__(self, head_dim: int, theta: float, max_positions: int):
        super().__init__()
        self.head_dim, self.theta, self.max_positions = head_dim, theta, max_positions

    def build(self, device: torch.device, max_positions: int | None = None) -> None:
        # Sized to the serving context, not the model's maximum (131k positions would cost 134 MB here).
        self.max_positions = min(max_positions or self.max_positions, self.max_positions)
        inv_freq = 1.0 / (
            self.theta
            ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim)
        )
        freqs = torch.arange(self.max_positions, device=device).float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions].to(dtype).unsqueeze(1), self.sin[positions].to(dtype).unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h, self.hkv, self.d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.qkv_proj = nn.Linear(cfg.hidden_size, (self.h + 2 * self.hkv) * self.d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.h * self.d, cfg.hidden_size, bias=False)
        self.scale = self.d**-0.5

    def forward(self, x, cos, sin, k_cache, v_cache, meta: AttentionMetadata):
        q, k, v = self.qkv_proj(x).split([self.h * self.d, self.hkv * self.d, self.hkv * self.d], dim=-1)
        q = apply_rotary(q.view(-1, self.h, self.d), cos, sin)
        k = apply_rotary(k.view(-1, self.hkv, self.d), cos, sin)
        o = paged_attention(q, k, v.view(-1, self.hkv, self.d), k_cache, v_cache, meta, self.scale)
        return self.o_proj(o.reshape(-1, self.h * self.d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, k_cache, v_cache, meta):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, k_cache, v_cache, meta)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta, cfg.max_position_embeddings)

    # Where each checkpoint tensor goes: (our parameter, slice index within a fused parameter or None).
    def param_for(self, hf_name: str) -> tuple[str, int | None] | None:
        name = hf_name.removeprefix("model.")
        for src, dst, shard in (
            ("self_attn.q_proj", "self_attn.qkv_proj", 0),
            ("self_attn.k_proj", "self_attn.qkv_proj", 1),
            ("self_attn.v_proj", "self_attn.qkv_proj", 2),
            ("mlp.gate_proj", "mlp.gate_up_proj", 0),
            ("mlp.up_proj", "mlp.gate_up_proj", 1),
        ):
            if src in name:
                return name.replace(src, dst), shard
        if "rotary_emb" in name:
            return None
        if name == "lm_head.weight" and self.cfg.tie_word_embeddings:
            return None
        return name, None

    def shard_sizes(self, param: str) -> list[int]:
        c = self.cfg
        if "qkv_proj" in param:
            return [c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.num_kv_heads * c.head_dim]
        return [c.intermediate_size, c.intermediate_size]

    def forward(self, input_ids, positions, kv_caches, meta: AttentionMetadata) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(positions, x.dtype)
        for layer, (k_cache, v_cache) in zip(self.layers, kv_caches, strict=True):
            x = layer(x, cos, sin, k_cache, v_cache, meta)
        return self.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)
