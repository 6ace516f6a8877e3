"""The per-layer elementwise kernels: residual add + RMSNorm, SiLU x up, rotary embedding on q and k together.

Each is written once, in plain PyTorch, with transformers' op order and fp32 where transformers uses fp32, so the
eager engine keeps its token-for-token equality with transformers. Run eagerly they are a few small ops each;
inside the compiled decode step (engine/compiled.py) inductor fuses each into one loop over the activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(norm(x + residual), x + residual): the residual stream and the next sub-layer's input in one pass."""
    if residual is not None:
        x = x + residual
    return rms_norm(x, weight, eps), x


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) * up for the fused gate_up projection's output [.., 2 * I]."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate-half RoPE on q [T, H, D] and k [T, Hkv, D]; cos/sin [T, 1, D] in the activations' dtype."""
    return _rotate(q, cos, sin), _rotate(k, cos, sin)
