"""One face over the ways the apps generate: the offline `LLM` (CLI, batch), the server's `AsyncEngine` (both
constrained while generating by the JSON-schema logits processor) and a gateway's upstream (the schema sent as
`response_format`, the answer validated here and asked for once more when it does not validate). Each takes chat
messages plus an output schema and returns texts that satisfy the schema."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from dataclasses import dataclass

from r1stack.engine.chat import render_chat
from r1stack.engine.constrained import json_schema_processor, response_format, schema_error, strict_schema
from r1stack.engine.sampling_params import SamplingParams

log = logging.getLogger("r1stack.apps")
_ids = itertools.count()


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
        last = None
        async for out in self.engine.generate(text, params, _request_id(), prompt_token_ids=ids):
            last = out
        return last.outputs[0].text if last is not None else ""


class UpstreamBackend:
    """Wraps a gateway's `UpstreamEngine` (no tokenizer here, so no logits processor): the schema goes upstream
    as `response_format` (vLLM's and SGLang's structured output), the answer is validated here, and a job whose
    answer does not validate is asked for once more before the caller gets a 502 that says why."""

    ATTEMPTS = 2
    # A batch of thousands of rows must not open thousands of streams at once; the replicas batch what they get.
    MAX_IN_FLIGHT = 64

    def __init__(self, engine):
        self.engine = engine
        self.name = engine.model_info.name
        self._slots = asyncio.Semaphore(self.MAX_IN_FLIGHT)

    async def run(self, jobs: list[Job]) -> list[str]:
        return list(await asyncio.gather(*(self._one(job) for job in jobs)))

    async def _one(self, job: Job) -> str:
        async with self._slots:
            return await self._answer(job)

    async def _answer(self, job: Job) -> str:
        messages = _with_schema(job.messages, job.schema)
        fmt = response_format(job.schema)
        problems = []
        for attempt in range(self.ATTEMPTS):
            # A fresh seed for the second try: a seeded upstream would otherwise repeat the same bad answer.
            seed = None if job.seed is None else job.seed + attempt * 1_000_003
            params = SamplingParams(temperature=job.temperature, max_tokens=job.max_tokens, seed=seed)
            last = None
            async for out in self.engine.generate(
                None, params, _request_id(), messages=messages, response_format=fmt
            ):
                last = out
            text = last.outputs[0].text if last is not None else ""
            problem = schema_error(job.schema, text)
            if problem is None:
                return text
            # Not the answer itself: logs are not where model output (possibly personal data) belongs.
            log.warning("upstream answer of %d characters does not match the output schema", len(text))
            problems.append(problem if len(problem) <= 160 else problem[:157] + "...")
        from r1stack.server.errors import APIError

        raise APIError(
            502,
            f"the upstream model's answer did not match the output schema in {self.ATTEMPTS} tries "
            f"({'; '.join(problems)}); serve the model on an upstream with structured output "
            "(response_format json_schema, as vLLM and SGLang accept it) or on the native engine",
            code="upstream_invalid_answer",
        )


def _with_schema(messages: list[dict], schema: dict) -> list[dict]:
    """The system message plus the schema itself, for an upstream that does not enforce it."""
    hint = "Reply with one JSON object matching this JSON schema and nothing else: " + json.dumps(
        strict_schema(schema)
    )
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + hint}, *messages[1:]]
    return [{"role": "system", "content": hint}, *messages]


def server_backend(engine) -> AsyncBackend | UpstreamBackend:
    """The backend for a server's engine: native (a tokenizer, so constrained decoding) or an upstream."""
    return AsyncBackend(engine) if getattr(engine, "tokenizer", None) is not None else UpstreamBackend(engine)


def _request_id() -> str:
    return f"app-{uuid.uuid4().hex[:12]}-{next(_ids)}"
