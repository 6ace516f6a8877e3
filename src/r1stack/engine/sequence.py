"""Sequence: one stream of tokens being generated (a request with n > 1 owns n of them)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

import torch

from r1stack.engine.outputs import PositionLogprobs
from r1stack.engine.sampling_params import SamplingParams

_ids = itertools.count()


class Status(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    request_id: str
    index: int  # 0..n-1 within its request
    prompt_token_ids: list[int]
    params: SamplingParams
    generator: torch.Generator | None = None  # set for seeded requests: same seed, same tokens
    seq_id: int = field(default_factory=lambda: next(_ids))
    tokens: list[int] = field(init=False)  # prompt + output; what the KV cache must hold
    num_computed: int = 0  # tokens whose K/V are in the cache
    num_cached_hit: int = 0  # prompt tokens served by the prefix cache at first admission
    block_table: list[int] = field(default_factory=list)
    status: Status = Status.WAITING
    # output side
    decoded: str = ""  # all text so far, stop strings applied
    text: str = ""  # what may be shown: decoded minus a possible partial stop string
    logprobs: list[PositionLogprobs] | None = None
    prompt_logprobs: list[PositionLogprobs | None] | None = None
    cumulative_logprob: float = 0.0
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    detok: object = None  # IncrementalDetokenizer, set by the engine

    def __post_init__(self) -> None:
        self.tokens = list(self.prompt_token_ids)
        if self.params.logprobs is not None:
            self.logprobs = []

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def output_token_ids(self) -> list[int]:
        return self.tokens[self.num_prompt_tokens :]

    @property
    def num_output_tokens(self) -> int:
        return len(self.tokens) - self.num_prompt_tokens

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED
