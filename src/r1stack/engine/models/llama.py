"""Llama-architecture decoder (SmolLM2, R1-Distill-Llama; Qwen2 is the same with q/k/v biases).

Numerics follow transformers' implementation op for op (fp32 RMSNorm, rotate-half RoPE) so that greedy output
matches it token for token. q/k/v and gate/up are fused into one matmul each; the loader fills the slices.
"""

from __future__ import annotations

import torch
from torch import nn

from r1stack.engine import kernels
from r1stack.engine.attention import AttentionMetadata, paged_attention
from r1stack.engine.config import ModelConfig


class RMSNorm(nn.Module):
    ops = kernels  # the elementwise kernels; engine/cpu_fused.py's use() swaps in its C++ ones

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.rms_norm(x, self.weight, self.eps)


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


class Attention(nn.Module):
    ops = kernels

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h, self.hkv, self.d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.qkv_proj = nn.Linear(cfg.hidden_size, (self.h + 2 * self.hkv) * self.d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.h * self.d, cfg.hidden_size, bias=False)
        self.scale = self.d**-0.5

    def qkv(self, x, cos, sin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [T, H, D] and k, v [T, Hkv, D], q and k rotated."""
        q, k, v = self.qkv_proj(x).split([self.h * self.d, self.hkv * self.d, self.hkv * self.d], dim=-1)
        q, k = self.ops.rotary(q.view(-1, self.h, self.d), k.view(-1, self.hkv, self.d), cos, sin)
        return q, k, v.view(-1, self.hkv, self.d)

    def forward(self, x, cos, sin, k_cache, v_cache, meta: AttentionMetadata):
        q, k, v = self.qkv(x, cos, sin)
        o = paged_attention(q, k, v, k_cache, v_cache, meta, self.scale)
        return self.o_proj(o.reshape(-1, self.h * self.d))


class MLP(nn.Module):
    ops = kernels

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(self.ops.silu_mul(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    """Carries the residual stream beside the hidden state, so that each residual add is fused with the norm
    that follows it (the sum is the same numbers as `x + sublayer(norm(x))`)."""

    ops = kernels

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, residual, cos, sin, k_cache, v_cache, meta):
        n1, n2 = self.input_layernorm, self.post_attention_layernorm
        h, residual = self.ops.add_rms_norm(x, residual, n1.weight, n1.eps)
        h = self.self_attn(h, cos, sin, k_cache, v_cache, meta)
        h, residual = self.ops.add_rms_norm(h, residual, n2.weight, n2.eps)
        return self.mlp(h), residual


class LlamaForCausalLM(nn.Module):
    ops = kernels

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
        residual = None
        for layer, (k_cache, v_cache) in zip(self.layers, kv_caches, strict=True):
            x, residual = layer(x, residual, cos, sin, k_cache, v_cache, meta)
        return self.ops.add_rms_norm(x, residual, self.norm.weight, self.norm.eps)[0]

    def forward_decode(
        self, input_ids, positions, kv_caches, meta: AttentionMetadata, layer_fn
    ) -> torch.Tensor:
        """A decode-only batch through `layer_fn` (engine/compiled.py's decode_layer, compiled or not)."""
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(positions, x.dtype)
        residual = torch.zeros_like(x)  # x + 0 is x exactly; one compiled graph then serves every layer
        for layer, (k_cache, v_cache) in zip(self.layers, kv_caches, strict=True):
            x, residual = layer_fn(
                layer,
                x,
                residual,
                cos,
                sin,
                k_cache,
                v_cache,
                meta.slot_mapping,
                meta.block_tables,
                meta.context_lens,
                meta.block_size,
            )
        return self.ops.add_rms_norm(x, residual, self.norm.weight, self.norm.eps)[0]

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)
