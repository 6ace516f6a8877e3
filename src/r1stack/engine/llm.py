"""The offline API, shaped like vLLM's: `LLM(model).generate(prompts, params)` and `.chat(messages, params)`."""

from __future__ import annotations

import itertools

from r1stack.engine.chat import render_chat
from r1stack.engine.config import EngineArgs
from r1stack.engine.llm_engine import LLMEngine
from r1stack.engine.outputs import RequestOutput
from r1stack.engine.sampling_params import SamplingParams
from r1stack.progress import console

PromptType = str | dict  # a string, or {"prompt_token_ids": [...]} as vLLM's TokensPrompt


class LLM:
    def __init__(self, model: str = "smollm2-135m-instruct", **kwargs):
        self.engine = LLMEngine(EngineArgs(model=model, **kwargs))
        self._ids = itertools.count()

    def get_tokenizer(self):
        return self.engine.tokenizer

    def generate(
        self,
        prompts: PromptType | list[PromptType],
        sampling_params: SamplingParams | list | None = None,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        if isinstance(prompts, str | dict):
            prompts = [prompts]
        params = sampling_params or SamplingParams()
        params_list = params if isinstance(params, list) else [params] * len(prompts)
        order = []
        for prompt, p in zip(prompts, params_list, strict=True):
            rid = str(next(self._ids))
            if isinstance(prompt, dict):
                self.engine.add_request(
                    rid, prompt.get("prompt"), p, prompt_token_ids=prompt["prompt_token_ids"]
                )
            else:
                self.engine.add_request(rid, prompt, p)
            order.append(rid)
        return self._run(order, use_tqdm)

    def chat(
        self,
        messages: list[dict] | list[list[dict]],
        sampling_params: SamplingParams | None = None,
        chat_template_kwargs: dict | None = None,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        prompts = []
        for conv in conversations:
            text = render_chat(self.engine.tokenizer, conv, **(chat_template_kwargs or {}))
            # The template already wrote any BOS: do not add special tokens a second time.
            prompts.append(
                {"prompt": text, "prompt_token_ids": self.engine.tokenize(text, add_special_tokens=False)}
            )
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def _run(self, order: list[str], use_tqdm: bool) -> list[RequestOutput]:
        done: dict[str, RequestOutput] = {}
        from rich.progress import Progress

        with Progress(console=console, disable=not use_tqdm, transient=True) as bar:
            task = bar.add_task("generating", total=len(order))
            while self.engine.has_unfinished():
                for out in self.engine.step():
                    if out.finished:
                        done[out.request_id] = out
                        bar.advance(task)
        return [done[rid] for rid in order]
