"""SamplingParams: how one request is sampled and when it stops (vLLM's names and defaults)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from r1stack.errors import UserError

# A logits processor sees one sequence's logits (1-D, vocab) and returns them changed. Either
# fn(output_token_ids, logits) or fn(prompt_token_ids, output_token_ids, logits), as in vLLM.
LogitsProcessor = Callable[..., torch.Tensor]
_SAMPLING_EPS = 1e-5


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1  # -1 or 0: off
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16  # None: up to the context length
    min_tokens: int = 0
    logprobs: int | None = None  # number of top alternatives per generated token
    prompt_logprobs: int | None = None  # same for prompt tokens (completions' echo + logprobs)
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    logits_processors: list[LogitsProcessor] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = [s for s in (self.stop or []) if s]
        self.stop_token_ids = list(self.stop_token_ids or [])
        self.logits_processors = list(self.logits_processors or [])
        if self.top_k == 0:
            self.top_k = -1
        self._validate()
        if self.temperature < _SAMPLING_EPS:
            self.temperature = 0.0  # as vLLM: a temperature this small is greedy, not a division by ~0

    def _validate(self) -> None:
        def bad(param: str, msg: str) -> UserError:
            return UserError(f"{param} {msg}", param=param)

        if self.n < 1:
            raise bad("n", f"must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise bad("temperature", f"must be >= 0 (0 means greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.top_k < -1:
            raise bad("top_k", f"must be -1 (off) or a positive integer, got {self.top_k}")
        if not 0 <= self.min_p <= 1:
            raise bad("min_p", f"must be in [0, 1], got {self.min_p}")
        if not -2 <= self.presence_penalty <= 2:
            raise bad("presence_penalty", f"must be in [-2, 2], got {self.presence_penalty}")
        if not -2 <= self.frequency_penalty <= 2:
            raise bad("frequency_penalty", f"must be in [-2, 2], got {self.frequency_penalty}")
        if not 0.01 <= self.repetition_penalty <= 100:
            raise bad(
                "repetition_penalty", f"must be in [0.01, 100] (1 means off), got {self.repetition_penalty}"
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise bad("max_tokens", f"must be at least 1, got {self.max_tokens}")
        if self.min_tokens < 0:
            raise bad("min_tokens", f"must be >= 0, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise bad("min_tokens", f"({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})")
        for name in ("logprobs", "prompt_logprobs"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 20:
                raise bad(name, f"must be between 0 and 20, got {v}")
        for fn in self.logits_processors:
            if not callable(fn):
                raise bad("logits_processors", "must be callables")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def needs_penalties(self) -> bool:
        return self.presence_penalty != 0 or self.frequency_penalty != 0 or self.repetition_penalty != 1


def call_logits_processor(
    fn: LogitsProcessor, prompt_ids: list[int], output_ids: list[int], logits: torch.Tensor
):
    """Call a processor in whichever of vLLM's two signatures it has."""
    nargs = _arity(fn)
    return fn(prompt_ids, output_ids, logits) if nargs >= 3 else fn(output_ids, logits)


def _arity(fn: LogitsProcessor) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params
    )
