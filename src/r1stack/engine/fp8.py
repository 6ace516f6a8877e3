"""FP8 (e4m3) block-scaled weights as DeepSeek's checkpoints ship them: one float32 `weight_scale_inv` per
(128 x 128) block, so that weight ~= fp8_weight * scale_inv broadcast over its block."""

from __future__ import annotations

import torch

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8_DTYPE).max  # 448


def dequantize_blocks(
    weight: torch.Tensor, scale_inv: torch.Tensor, block: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor:
    """weight [N, K] in FP8, scale_inv [ceil(N/bn), ceil(K/bk)] -> [N, K] in dtype."""
    n, k = weight.shape
    bn, bk = block
    expected = (-(-n // bn), -(-k // bk))
    if tuple(scale_inv.shape) != expected:
        raise ValueError(
            f"weight_scale_inv has shape {tuple(scale_inv.shape)}, expected {expected} for a "
            f"{n}x{k} weight in {bn}x{bk} blocks"
        )
    scale = scale_inv.float().repeat_interleave(bn, 0)[:n].repeat_interleave(bk, 1)[:, :k]
    return (weight.float() * scale).to(dtype)


def quantize_blocks(
    weight: torch.Tensor, block: tuple[int, int] = (128, 128)
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse, as DeepSeek's conversion does it: each block's absolute maximum maps to FP8's maximum.
    Returns (fp8 weight [N, K], float32 scale_inv [ceil(N/bn), ceil(K/bk)])."""
    n, k = weight.shape
    bn, bk = block
    rows, cols = -(-n // bn), -(-k // bk)
    padded = torch.zeros(rows * bn, cols * bk, dtype=torch.float32)
    padded[:n, :k] = weight.float()
    blocks = padded.view(rows, bn, cols, bk)
    amax = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-12)
    scale_inv = amax / FP8_MAX
    q = (blocks / scale_inv[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q.view(rows * bn, cols * bk)[:n, :k].contiguous(), scale_inv
