"""Watermark detection: count green tokens under the same parameters the generator used, and turn the count
into a one-sided z-test against the share gamma that unwatermarked text would show."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from r1stack.errors import UserError
from r1stack.guard.watermark import WatermarkParams

MIN_SCORED = 16  # below this many scored tokens the verdict says "too short"


@dataclass(frozen=True)
class Detection:
    z: float
    p_value: float
    verdict: str  # "watermarked" | "not watermarked" | "too short"
    green: int
    scored: int  # distinct (context, token) pairs counted; repeats would inflate z for looping text
    tokens: int
    gamma: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def detect_ids(ids: Sequence[int], params: WatermarkParams, prompt_ids: Sequence[int] = ()) -> Detection:
    h = params.context
    seq = [*prompt_ids, *ids]
    seen: set[tuple[int, ...]] = set()
    green = 0
    for pos in range(len(prompt_ids), len(seq)):
        if pos < h:
            continue
        gram = tuple(seq[pos - h : pos + 1])
        if gram in seen:
            continue
        seen.add(gram)
        green += params.is_green(gram[:-1], gram[-1])
    n = len(seen)
    g = params.gamma
    z = (green - g * n) / math.sqrt(n * g * (1 - g)) if n else 0.0
    p = 0.5 * math.erfc(z / math.sqrt(2))
    if n < MIN_SCORED:
        verdict = "too short"
    else:
        verdict = "watermarked" if z > params.z_threshold else "not watermarked"
    return Detection(z, p, verdict, green, n, len(ids), g)


def detect(
    text_or_ids: str | Sequence[int], settings: Any, tokenizer: Any = None, prompt_ids: Sequence[int] = ()
) -> Detection:
    """z-score, p-value and verdict for generated text (tokenised with the model's tokenizer) or token ids."""
    params = WatermarkParams.from_settings(settings)
    if isinstance(text_or_ids, str):
        if tokenizer is None:
            raise UserError(
                "detecting a watermark in text needs the model's tokenizer; pass token ids or a tokenizer"
            )
        ids = tokenizer.encode(text_or_ids, add_special_tokens=False)
    else:
        ids = list(text_or_ids)
    return detect_ids(ids, params, prompt_ids)
