"""The green-list watermark of Kirchenbauer et al. (2023) as a logits processor: the previous `context` tokens
and a secret key seed a pseudo-random split of the vocabulary, and green tokens get `delta` added to their logit.

Each token's colour is a keyed hash bit with P(green) = gamma rather than a slice of a seeded permutation, so
the detector needs no vocabulary-sized work and CPU and GPU agree bit for bit."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

_M32 = 0xFFFFFFFF
# Multipliers below 2^31 keep every product of two 32-bit values inside signed int64 (torch has no uint64 math).
_C1, _C2 = 0x7FEB352D, 0x2C1B3C6D


def _mix(x: int) -> int:
    x ^= x >> 16
    x = (x * _C1) & _M32
    x ^= x >> 15
    x = (x * _C2) & _M32
    return x ^ (x >> 16)


def _mix_t(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 16)


@dataclass(frozen=True)
class WatermarkParams:
    key: str
    gamma: float = 0.25
    delta: float = 2.0
    context: int = 1
    z_threshold: float = 4.0

    @classmethod
    def from_settings(cls, settings: Any) -> WatermarkParams:
        g = getattr(settings, "guard", settings)
        return cls(
            g.watermark_key,
            g.watermark_gamma,
            g.watermark_delta,
            g.watermark_context,
            g.watermark_z_threshold,
        )

    @property
    def _cutoff(self) -> int:
        return int(self.gamma * 2**32)

    def seed(self, context: Sequence[int]) -> int:
        data = self.key.encode() + b"".join(int(t).to_bytes(4, "little") for t in context)
        return int.from_bytes(hashlib.sha256(data).digest()[:4], "little")

    def is_green(self, context: Sequence[int], token: int) -> bool:
        return _mix(_mix(token) ^ self.seed(context)) < self._cutoff


class WatermarkProcessor:
    """vLLM-style logits processor `(prompt_token_ids, output_token_ids, logits) -> logits` over one sequence's
    1-D logits. The 3-argument form lets the first generated token use the last prompt token as context."""

    def __init__(self, params: WatermarkParams):
        self.params = params
        self._mixed: dict[tuple[int, str], torch.Tensor] = {}

    def green_mask(
        self, context: Sequence[int], vocab_size: int, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        key = (vocab_size, str(device))
        mixed = self._mixed.get(key)
        if mixed is None:
            mixed = self._mixed[key] = _mix_t(torch.arange(vocab_size, dtype=torch.int64, device=device))
        return _mix_t(mixed ^ self.params.seed(context)) < self.params._cutoff

    def __call__(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], logits: torch.Tensor
    ) -> torch.Tensor:
        h = self.params.context
        if len(output_token_ids) >= h:
            context = list(output_token_ids[len(output_token_ids) - h :])
        else:
            context = (list(prompt_token_ids) + list(output_token_ids))[-h:]
        if len(context) < h:
            return logits
        mask = self.green_mask(context, logits.shape[-1], logits.device)
        return logits + mask.to(logits.dtype) * self.params.delta


def watermark_processor(settings: Any) -> WatermarkProcessor:
    """The processor to put in `SamplingParams(logits_processors=[...])` when guard.watermark is on."""
    return WatermarkProcessor(WatermarkParams.from_settings(settings))
