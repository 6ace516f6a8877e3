"""Quantized weight records and every conversion into them: round-to-nearest, GGUF blocks, AutoAWQ's GEMM layout.

One int4 convention everywhere (PyTorch's packed-int4 kernels use it): w = (q - 8) * scale + zero, q in 0..15,
one scale/zero per group of `group_size` input columns. int8 is symmetric per output channel: w = q * scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# AutoAWQ packs 8 output columns into one int32 in this interleaved order (nibble i holds column AWQ_ORDER[i]).
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
GROUP_SIZES = (32, 64, 128)


@dataclass
class Int4Weights:
    q: torch.Tensor  # [N, K] uint8, 0..15
    scale: torch.Tensor  # [N, K // group_size] float32
    zero: torch.Tensor  # [N, K // group_size] float32
    group_size: int

    def dequantize(self) -> torch.Tensor:
        n, k = self.q.shape
        g = self.group_size
        q = self.q.view(n, k // g, g).float() - 8
        return (q * self.scale[..., None] + self.zero[..., None]).view(n, k)

    def rows(self, perm: torch.Tensor) -> Int4Weights:
        return Int4Weights(self.q[perm], self.scale[perm], self.zero[perm], self.group_size)


@dataclass
class Int8Weights:
    q: torch.Tensor  # [N, K] int8
    scale: torch.Tensor  # [N] float32

    def dequantize(self) -> torch.Tensor:
        return self.q.float() * self.scale[:, None]

    def rows(self, perm: torch.Tensor) -> Int8Weights:
        return Int8Weights(self.q[perm], self.scale[perm])


def concat(parts: list) -> Int4Weights | Int8Weights:
    """Stack shards along the output dimension (q, k, v -> qkv; gate, up -> gate_up)."""
    first = parts[0]
    if isinstance(first, Int8Weights):
        return Int8Weights(torch.cat([p.q for p in parts]), torch.cat([p.scale for p in parts]))
    if any(p.group_size != first.group_size for p in parts):
        raise ValueError("fused shards were quantized with different group sizes")
    return Int4Weights(
        torch.cat([p.q for p in parts]),
        torch.cat([p.scale for p in parts]),
        torch.cat([p.zero for p in parts]),
        first.group_size,
    )


# ---- round to nearest --------------------------------------------------------------------------------------
def int4_rtn_parts(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 with an integer zero point (AutoAWQ's scheme, so the result exports to its layout
    losslessly). Returns (q [N,K] uint8, scale [N,G], izero [N,G] integer zero point 0..15)."""
    n, k = w.shape
    if k % group_size:
        raise ValueError(f"input size {k} is not a multiple of the group size {group_size}")
    wg = w.float().reshape(n, k // group_size, group_size)
    lo, hi = wg.amin(-1), wg.amax(-1)
    scale = (hi - lo).clamp(min=1e-5) / 15
    izero = (-torch.round(lo / scale)).clamp(0, 15)
    q = (torch.round(wg / scale[..., None]) + izero[..., None]).clamp(0, 15)
    return q.to(torch.uint8).view(n, k), scale, izero


def int4_rtn(w: torch.Tensor, group_size: int = 128) -> Int4Weights:
    q, scale, izero = int4_rtn_parts(w, group_size)
    return Int4Weights(q, scale, (8 - izero) * scale, group_size)


def int8_rtn(w: torch.Tensor) -> Int8Weights:
    w = w.float()
    scale = w.abs().amax(1).clamp(min=1e-8) / 127
    return Int8Weights(torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale)


def fake_int4(w: torch.Tensor, group_size: int) -> torch.Tensor:
    """Quantize then dequantize (what the AWQ search scores candidate scales with)."""
    q, scale, izero = int4_rtn_parts(w, group_size)
    n, k = w.shape
    return ((q.view(n, -1, group_size).float() - izero[..., None]) * scale[..., None]).view(n, k)


# ---- GGUF blocks (32 weights per block, scales in f16) -----------------------------------------------------
def from_gguf(kind: str, raw: torch.Tensor, shape: list[int]) -> Int4Weights | Int8Weights:
    """A Q4_0 / Q4_1 / Q8_0 tensor's bytes -> our format without going through float weights.

    Q4_0 (w = d*(q-8)) and Q4_1 (w = d*q + m) map exactly onto the int4 convention with group size 32. Q8_0 has a
    scale per 32 weights where our int8 kernel has one per row: its values are requantized per row, an error of at
    most half a step of the row's largest scale (the test bounds it).
    """
    n, k = shape
    if kind == "Q8_0":
        b = raw.view(-1, 34)
        d = b[:, :2].contiguous().view(torch.float16).float()
        w = (d * b[:, 2:].contiguous().view(torch.int8).float()).view(n, k)
        return int8_rtn(w)
    head = 2 if kind == "Q4_0" else 4
    b = raw.view(-1, head + 16)
    d = b[:, :2].contiguous().view(torch.float16).float().view(n, k // 32)
    qs = b[:, head:]
    q = torch.cat([qs & 0x0F, qs >> 4], dim=1).reshape(n, k)  # low nibbles are the block's first 16 weights
    if kind == "Q4_0":
        zero = torch.zeros_like(d)
    else:
        m = b[:, 2:4].contiguous().view(torch.float16).float().view(n, k // 32)
        zero = m + 8 * d
    return Int4Weights(q.contiguous(), d, zero, 32)


# ---- AutoAWQ GEMM layout: qweight [K, N/8] int32, qzeros [K/g, N/8] int32, scales [K/g, N] fp16 ------------
def _unpack_cols(packed: torch.Tensor) -> torch.Tensor:
    cols = [None] * 8
    for i, c in enumerate(AWQ_ORDER):
        cols[c] = (packed >> (4 * i)) & 0xF
    return torch.stack(cols, dim=-1).reshape(packed.shape[0], -1)


def _pack_cols(values: torch.Tensor) -> torch.Tensor:
    v = values.to(torch.int32).view(values.shape[0], -1, 8)
    packed = torch.zeros(v.shape[:2], dtype=torch.int32)
    for i, c in enumerate(AWQ_ORDER):
        packed |= v[..., c] << (4 * i)
    return packed


def from_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor) -> Int4Weights:
    q = _unpack_cols(qweight).t().contiguous().to(torch.uint8)  # [N, K]
    izero = _unpack_cols(qzeros).t().float()  # [N, G]
    scale = scales.t().float().contiguous()
    group_size = q.shape[1] // scale.shape[1]
    return Int4Weights(q, scale, ((8 - izero) * scale).contiguous(), group_size)


def to_awq(q: torch.Tensor, scale: torch.Tensor, izero: torch.Tensor) -> dict[str, torch.Tensor]:
    """(q [N,K], scale [N,G], integer zero [N,G]) -> the three AutoAWQ tensors."""
    return {
        "qweight": _pack_cols(q.t().contiguous()),
        "qzeros": _pack_cols(izero.t().contiguous()),
        "scales": scale.t().contiguous().half(),
    }
