"""Weight-only quantized linear layers: int8 per output channel and int4 group-wise. Kernels, best first: on
CPUs with AVX512-VNNI our own (cpu_gemv.py: int8 activations, 3-6x PyTorch's at one row); PyTorch's packed
kernels (int8 and int4 on CPU, int4 through tinygemm on CUDA); else a plain dequantize-then-matmul fallback
(same numbers, no speed-up)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1stack.engine.quant import cpu_gemv
from r1stack.engine.quant.formats import Int4Weights, Int8Weights

# The packed CPU kernels are fast in bf16 and 20-30x slower with fp32 activations (measured on this CPU), so
# activations are cast to bf16 around the kernel whatever the model's dtype.
KERNEL_DTYPE = torch.bfloat16
PREFILL_ROWS = 32


def _has_op(name: str) -> bool:
    return hasattr(torch.ops.aten, name)


def _vnni(device: torch.device, kernel: str | None, fits: bool) -> bool:
    """Our VNNI kernel, unless another was asked for (tests compare the two)."""
    return kernel in (None, "vnni") and device.type == "cpu" and fits and cpu_gemv.available()


class Int8Linear(nn.Module):
    def __init__(
        self, w: Int8Weights, bias: torch.Tensor | None, device: torch.device, kernel: str | None = None
    ):
        super().__init__()
        self.out_features, self.in_features = w.q.shape
        self.kernel = None
        if _vnni(device, kernel, cpu_gemv.fits(*w.q.shape)):
            self.kernel = "vnni"
            self.register_buffer("qweight", cpu_gemv.pack_int8(w.q))
            self.register_buffer("scales", w.scale.float().contiguous())
        else:
            if device.type == "cpu" and _has_op("_weight_int8pack_mm") and kernel in (None, "cpu"):
                self.kernel = "cpu"
            self.register_buffer("qweight", w.q.to(device).contiguous())
            dtype = KERNEL_DTYPE if self.kernel else torch.float32
            self.register_buffer("scales", w.scale.to(device, dtype))
        self.packed = self.kernel is not None
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self.kernel == "vnni":
            y = cpu_gemv.qgemv(x2, self.qweight, self.scales, self.scales, 0, 8)
        elif self.packed and x2.shape[0] >= PREFILL_ROWS:
            # Prefill-sized batches: widening the weights and one bf16 matmul measured 2x faster than the kernel
            # (100 rows x 3072 x 576: 2.6 ms vs 5.3 ms); the memory saving holds, the copy is transient.
            w = self.qweight.to(KERNEL_DTYPE) * self.scales[:, None]
            y = F.linear(x2.to(KERNEL_DTYPE), w).to(x.dtype)
        elif self.packed:
            y = torch.ops.aten._weight_int8pack_mm(x2.to(KERNEL_DTYPE), self.qweight, self.scales).to(x.dtype)
        else:
            y = F.linear(x2, (self.qweight.to(x.dtype) * self.scales[:, None].to(x.dtype)))
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int8 per-channel, kernel={self.kernel}"


class Int4Linear(nn.Module):
    def __init__(
        self, w: Int4Weights, bias: torch.Tensor | None, device: torch.device, kernel: str | None = None
    ):
        super().__init__()
        self.out_features, self.in_features = w.q.shape
        self.group_size = w.group_size
        # The CPU packing wants N divisible by 16; CUDA's tinygemm layout wants N divisible by 8, K by 32 (two
        # inner K tiles) and a group of 32-256. Other shapes take the fallback.
        n, k = self.out_features, self.in_features
        self.kernel = None
        if _vnni(device, kernel, cpu_gemv.fits(n, k, w.group_size)):
            self.kernel = "vnni"
        elif (
            device.type == "cpu"
            and kernel in (None, "cpu")
            and _has_op("_weight_int4pack_mm_for_cpu")
            and n % 16 == 0
            and k % 2 == 0
        ):
            self.kernel = "cpu"
        elif (
            device.type == "cuda"
            and _has_op("_weight_int4pack_mm")
            and n % 8 == 0
            and k % 32 == 0
            and self.group_size in (32, 64, 128, 256)
        ):
            self.kernel = "cuda"
        self.packed = self.kernel is not None
        if self.kernel == "vnni":
            packed, scales, zeros = cpu_gemv.pack_int4(w.q, w.scale, w.zero)
            self.register_buffer("qweight", packed)
            self.register_buffer("scales", scales)  # [N/16, G, 16] fp16
            self.register_buffer("zeros", zeros)
        elif self.kernel == "cpu":
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(w.q.to(torch.int32).contiguous(), 1)
            self.register_buffer("qweight", packed.to(device))
        elif self.kernel == "cuda":
            q = w.q.to(torch.int32)
            nibbles = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)  # [N, K/2], even columns high
            self.register_buffer(
                "qweight", torch.ops.aten._convert_weight_to_int4pack(nibbles.to(device).contiguous(), 2)
            )
        if self.kernel in ("cpu", "cuda"):
            sz = torch.stack([w.scale, w.zero], dim=-1).transpose(0, 1).contiguous()  # [G, N, 2]
            self.register_buffer("scales_zeros", sz.to(device, KERNEL_DTYPE))
        elif self.kernel is None:
            self.register_buffer("qweight", w.q.to(device).contiguous())
            self.register_buffer(
                "scales_zeros", torch.stack([w.scale, w.zero], dim=-1).to(device)
            )  # [N, G, 2]
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self.kernel == "vnni":
            y = cpu_gemv.qgemv(x2, self.qweight, self.scales, self.zeros, self.group_size, 4)
        elif self.packed:
            mm = (
                torch.ops.aten._weight_int4pack_mm_for_cpu
                if self.kernel == "cpu"
                else torch.ops.aten._weight_int4pack_mm
            )
            y = mm(x2.to(KERNEL_DTYPE), self.qweight, self.group_size, self.scales_zeros).to(x.dtype)
        else:
            n, k, g = self.out_features, self.in_features, self.group_size
            q = self.qweight.view(n, k // g, g).to(x.dtype) - 8
            sz = self.scales_zeros.to(x.dtype)
            y = F.linear(x2, (q * sz[..., :1] + sz[..., 1:]).view(n, k))
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, int4 group {self.group_size}, "
            f"kernel={self.kernel}"
        )


def make_linear(w: Int4Weights | Int8Weights, bias: torch.Tensor | None, device: torch.device) -> nn.Module:
    if isinstance(w, Int8Weights):
        return Int8Linear(w, bias, device)
    return Int4Linear(w, bias, device)
