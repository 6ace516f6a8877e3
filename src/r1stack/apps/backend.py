"""One face over the two ways the apps run the engine: the offline `LLM` (CLI, batch) and the server's
`AsyncEngine`. Both take chat messages plus an output schema and return texts that satisfy the schema."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass

from r1stack.engine.chat import render_chat
from r1stack.engine.constrained import json_schema_processor
from r1stack.engine.sampling_params import SamplingParams


@dataclass
class Job:
    messages: list[dict]
    schema: dict
    max_tokens: int
    temperature: float
    seed: int | None = None


class _Base:
    tokenizer: object
    eos_token_ids: list[int]
    name: str

    def _prompt(self, job: Job) -> tuple[str, list[int], SamplingParams]:
        text = render_chat(self.tokenizer, job.messages)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        proc = json_schema_processor(job.schema, self.tokenizer, self.eos_token_ids, job.max_tokens)
        params = SamplingParams(
            temperature=job.temperature, max_tokens=job.max_tokens, seed=job.seed, logits_processors=[proc]
        )
        return text, ids, params


class OfflineBackend(_Base):
    """Wraps `r1stack.LLM`: a whole batch goes to one generate call, so continuous batching runs it."""

    def __init__(self, llm):
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.eos_token_ids = llm.engine.eos_token_ids
        self.name = llm.engine.model_info.name

    def run(self, jobs: list[Job], progress: bool = False) -> list[str]:
        prompts, params = [], []
        for job in jobs:
            text, ids, p = self._prompt(job)
            prompts.append({"prompt": text, "prompt_token_ids": ids})
            params.append(p)
        if not prompts:
            return []
        outs = self.llm.generate(prompts, params, use_tqdm=progress)
        return [o.outputs[0].text for o in outs]


class AsyncBackend(_Base):
    """Wraps the server's `AsyncEngine`; jobs run concurrently and join the engine's running batch."""

    _ids = itertools.count()

    def __init__(self, engine):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.eos_token_ids = engine.engine.eos_token_ids
        self.name = engine.model_info.name

    async def run(self, jobs: list[Job]) -> list[str]:
        return list(await asyncio.gather(*(self._one(job) for job in jobs)))

    async def _one(self, job: Job) -> str:
        # The first use of a schema builds its token tables: off the event loop.
        text, ids, params = await asyncio.to_thread(self._prompt, job)
        rid = f"app-{uuid.uuid4().hex[:12]}-{next(self._ids)}"
        last = None
        async for out in self.engine.generate(text, params, rid, prompt_token_ids=ids):
            last = out
        return last.outputs[0].text if last is not None else ""
