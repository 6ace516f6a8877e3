"""FP8 (e4m3) block-scaled weights as DeepSeek's checkpoints ship them: one float32 `weight_scale_inv` per
(128 x 128) block, so that weight ~= fp8_weight * scale_inv broadcast over its block. Either widened once at load
(CPU) or kept as FP8 in memory and widened per call (`Fp8Linear`; GPUs with FP8 support), which halves the weight
memory of a bf16 model: what lets R1's 671B parameters fit in one 8-GPU node."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
    if n % bn == 0 and k % bk == 0:  # the usual case: broadcast over a block view, no scale copy per element
        blocks = weight.float().view(n // bn, bn, k // bk, bk) * scale_inv.float()[:, None, :, None]
        return blocks.view(n, k).to(dtype)
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


def keeps_fp8(device: torch.device) -> bool:
    """Whether FP8 weights stay FP8 when nobody asked: on GPUs with FP8 tensor cores (Ada, Hopper: sm 8.9+),
    where the memory matters most; on a CPU they are widened at load, which is faster there."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


class Fp8Linear(nn.Module):
    """A linear layer holding its FP8 weight and block scales; each call widens the weight to the input's dtype.
    The widened values are exactly those the load-time path stores, so outputs match it bit for bit."""

    def __init__(
        self,
        weight: torch.Tensor,
        scale_inv: torch.Tensor,
        block: tuple[int, int],
        bias: nn.Parameter | None,
        dtype: torch.dtype,
    ):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.block: tuple[int, int] | None = block  # None once widened (see narrow)
        self.dtype = dtype  # the model's compute dtype
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale_inv", scale_inv.float())
        self.bias = bias

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        if self.block is None:
            return self.weight.to(dtype)
        return dequantize_blocks(self.weight, self.weight_scale_inv, self.block, dtype)

    def narrow(self, dim: int, start: int, size: int) -> None:
        """Keep rows (dim 0) or columns (dim 1) start .. start + size, as tensor parallelism cuts a layer. A cut
        along block edges stays FP8; a cut through a block widens the layer first (exact, only larger)."""
        full = self.weight.shape[dim]
        b = self.block[dim] if self.block else 1
        if self.block and (start % b or (size % b and start + size != full)):
            self.weight, self.block = self.dequantized(self.dtype), None
        if self.block:
            end = -(-(start + size) // b)
            self.weight_scale_inv = self.weight_scale_inv.narrow(dim, start // b, end - start // b).clone()
        self.weight = self.weight.narrow(dim, start, size).clone()
        self.out_features, self.in_features = self.weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized(x.dtype), self.bias)


def dense_weight(linear: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The weight of a linear layer in dtype, whether it is kept as FP8 or not (MLA's weight absorption reads it)."""
    return linear.dequantized(dtype) if isinstance(linear, Fp8Linear) else linear.weight
