"""One chat turn that offers tools, as a stream of events: text, tool calls, sources. The stack runs `web_search`
calls itself (through the search proxy) and generates again until the model answers; calls of the client's own
tools end the turn with finish_reason "tool_calls". Whole and streamed responses are both made from these events.

On a gateway the same turn runs against the upstream: the tools are described in the conversation as for a model
whose template has no tools, calls the model writes are parsed here, and a forced call's arguments are asked for
with `response_format` (the upstream's structured output), validated here and asked for once more if they fail,
so any OpenAI-compatible upstream with structured output serves tools without its own tool parser.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from r1stack.engine.constrained import json_schema_processor, response_format, schema_error
from r1stack.errors import UserError
from r1stack.pipeline import PreparedPrompt, Source
from r1stack.server.errors import APIError
from r1stack.server.protocol import ChatCompletionRequest
from r1stack.server.sampling import chat_params
from r1stack.server.shaping import ChoiceShaper
from r1stack.server.state import ServerState, upstream_usage
from r1stack.server.tools import WEB_SEARCH, CallHolder, ToolPlan, argument_schema, conversation, parse_calls
from r1stack.server.tools import template_takes_tools as _native

MAX_SEARCH_ROUNDS = 3  # generations that may run web_search before the model must answer
SEARCH_ARGS_TOKENS = 64  # a web_search call's arguments; the answer keeps the request's own budget
PICK_TOKENS = 32  # the tool name of a "required" choice among several tools


@dataclass
class Text:
    reasoning: str = ""
    content: str = ""


@dataclass
class CallStart:
    index: int
    id: str
    name: str


@dataclass
class CallArgs:
    index: int
    text: str


@dataclass
class Found:
    """Sources and notices so far (the whole lists, each time they grow)."""

    sources: list[Source]
    notices: list[str]


@dataclass
class Done:
    finish_reason: str | None


@dataclass
class ToolTurn:
    st: ServerState
    req: ChatCompletionRequest
    plan: ToolPlan
    messages: list[dict[str, Any]]  # transformers' chat format (hf_messages)
    caller: str | None
    request_id: str
    clock: Any
    sources: list[Source] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    web_queries: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompts: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # what the model wrote, for the audit log
    filters: Any = None

    def record(self) -> PreparedPrompt:
        """What the audit log keeps of the whole turn."""
        return PreparedPrompt("\n\n".join(self.prompts), [], self.sources, self.notices, self.web_queries)

    def check(self) -> None:
        """What can be refused before a response starts (a stream cannot change its status code later)."""
        if self.req.logprobs:
            raise UserError("logprobs cannot be combined with tools; drop one of them", param="logprobs")

    async def events(self) -> AsyncIterator[Text | CallStart | CallArgs | Found | Done]:
        self.check()
        pipeline, req, plan = self.st.pipeline, self.req, self.plan
        grounded = await pipeline.ground_chat(
            self.messages,
            key_id=self.caller,
            knowledge_bases=req.knowledge_bases,
            web_search=req.web_search,
            top_k_sources=req.top_k_sources,
        )
        self.sources, self.notices, self.web_queries = (
            grounded.sources,
            grounded.notices,
            grounded.web_queries,
        )
        if self.sources or self.notices:
            yield Found(list(self.sources), list(self.notices))
        question = next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "") or ""
        history = grounded.messages
        native = _native(pipeline.tokenizer)
        self.filters = pipeline.output_filter_factory(self.caller)
        choice, forced = plan.choice, plan.forced
        n_calls = 0
        for rnd in range(MAX_SEARCH_ROUNDS + 1):
            if rnd == MAX_SEARCH_ROUNDS:
                choice, forced = "none", None  # enough searching: the model answers with what it has
            messages, kw = conversation(history, plan, choice != "none", native)
            prepared = pipeline.render_prompt(
                messages,
                add_generation_prompt=req.add_generation_prompt,
                chat_template_kwargs={**(req.chat_template_kwargs or {}), **kw},
            )
            self.prompts.append(prepared.prompt)
            calls: list[tuple[str, str]] = []
            finish = None
            if choice in ("named", "required"):
                name = forced or await self._pick(prepared)
                streamed = name != WEB_SEARCH  # the stack's own call is not the client's to see
                call_id = _call_id()
                if streamed:
                    yield CallStart(n_calls, call_id, name)
                arguments = ""
                async for piece in self._forced(prepared, name):
                    arguments += piece
                    if streamed and piece:
                        yield CallArgs(n_calls, piece)
                calls = [(name, arguments)]
                if streamed:
                    self.output.append(f"{name}({arguments})")
                    yield Done("tool_calls")
                    return
            else:
                held = CallHolder() if choice == "auto" else None
                async for piece in self._free(prepared, held):
                    if isinstance(piece, Done):
                        finish = piece.finish_reason
                    else:
                        yield piece
                if held is not None:
                    rest, calls = parse_calls(held.held, plan)
                    if not calls:
                        rest = held.held  # nothing was taken out: the text goes out exactly as written
                    if rest:
                        self.output.append(rest)
                        yield Text(content=rest)
            if not calls:
                yield Done(finish)
                return
            theirs = [c for c in calls if c[0] != WEB_SEARCH]
            if theirs:
                # The client's tools are the client's to run; it sends the results back in the next request.
                for name, arguments in theirs:
                    yield CallStart(n_calls, _call_id(), name)
                    yield CallArgs(n_calls, arguments)
                    self.output.append(f"{name}({arguments})")
                    n_calls += 1
                yield Done("tool_calls")
                return
            history = history + await self._search(calls, question)
            yield Found(list(self.sources), list(self.notices))
            # A forced or required call was made; from here the model may answer (or, under auto, search again).
            choice, forced = ("auto", None) if plan.choice == "auto" else ("none", None)

    async def _search(self, calls: list[tuple[str, str]], question: str) -> list[dict[str, Any]]:
        """Runs the web_search calls; the assistant turn that made them and one tool message each."""
        made, answers = [], []
        for _, arguments in calls:
            call_id = _call_id()
            text, found, query, outcome = await self.st.pipeline.web_search_tool(
                arguments, question, start_index=len(self.sources) + 1
            )
            if query:
                self.web_queries.append(query)
            self.sources.extend(found)
            if not outcome.ok and outcome.error not in self.notices:
                self.notices.append(outcome.error)
            made.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": WEB_SEARCH, "arguments": _obj(arguments)},
                }
            )
            answers.append({"role": "tool", "tool_call_id": call_id, "name": WEB_SEARCH, "content": text})
        return [{"role": "assistant", "content": "", "tool_calls": made}, *answers]

    def _params(self, prepared: PreparedPrompt, own_budget: int | None = None):
        """Sampling for one generation: the request's max_tokens, or (the stack's own calls) `own_budget`."""
        if own_budget is not None:
            left = self.st.pipeline.resolve_max_tokens(prepared, None)
            max_tokens = min(left, own_budget)
        else:
            requested = self.req.max_completion_tokens or self.req.max_tokens
            param = "max_completion_tokens" if self.req.max_completion_tokens else "max_tokens"
            max_tokens = self.st.pipeline.resolve_max_tokens(prepared, requested, param)
        return chat_params(self.req, self.st.engine.model_info.generation_defaults, max_tokens)

    async def _run(self, prepared: PreparedPrompt, params) -> AsyncIterator:
        self.prompt_tokens += len(prepared.prompt_token_ids)
        rid = f"{self.request_id}-{len(self.prompts)}"
        pipeline = self.st.pipeline
        async with aclosing(pipeline.generate(prepared, params, rid, self.st.request_timeout_s)) as outs:
            last = None
            async for out in outs:
                self.clock.saw(out)
                last = out
                yield out.outputs[0]
        counted = upstream_usage(last)
        if counted is not None:  # an upstream tokenizes, and says how many
            self.prompt_tokens += counted[0]
            self.completion_tokens += counted[1]
        elif last is not None:
            self.completion_tokens += len(last.outputs[0].token_ids)

    async def _constrained(
        self, prepared: PreparedPrompt, schema: dict, budget: int | None
    ) -> AsyncIterator[str]:
        """Text generated under `schema`, piece by piece."""
        params = self._params(prepared, budget)
        engine = self.st.engine
        if engine.tokenizer is None:
            yield await self._upstream_constrained(prepared, schema, params)
            return
        proc = json_schema_processor(
            schema, engine.tokenizer, engine.model_info.eos_token_ids, params.max_tokens
        )
        params.logits_processors = [*params.logits_processors, proc]
        # Stop strings, min_tokens and ignore_eos would fight the grammar: it alone decides where the JSON ends.
        params.stop, params.min_tokens, params.ignore_eos = [], 0, False
        seen = 0
        async for o in self._run(prepared, params):
            yield o.text[seen:]
            seen = len(o.text)

    async def _upstream_constrained(self, prepared: PreparedPrompt, schema: dict, params) -> str:
        """The upstream enforces the schema (response_format); checked here, since not every upstream does, and
        asked once more on a miss. Whole, not streamed: a streamed piece could not be taken back."""
        prepared.response_format = response_format(schema, "arguments")
        problems = []
        for attempt in range(2):
            if attempt and params.seed is not None:
                params.seed += 1_000_003  # a seeded upstream would repeat the same miss
            text = ""
            async for o in self._run(prepared, params):
                text = o.text
            problem = schema_error(schema, text)
            if problem is None:
                return text
            problems.append(problem[:160])
        raise APIError(
            502,
            f"the upstream's tool call arguments did not match the tool's parameters in 2 tries "
            f"({'; '.join(problems)}); serve the model on an upstream with structured output (response_format "
            "json_schema, as vLLM and SGLang accept it) or on the native engine",
            code="upstream_invalid_answer",
        )

    async def _forced(self, prepared: PreparedPrompt, name: str) -> AsyncIterator[str]:
        schema = argument_schema(self.plan.tool(name))
        if schema is None:
            yield "{}"
            return
        budget = SEARCH_ARGS_TOKENS if name == WEB_SEARCH else None
        async for piece in self._constrained(prepared, schema, budget):
            yield piece

    async def _pick(self, prepared: PreparedPrompt) -> str:
        """tool_choice "required": the model picks which tool, under an enum of their names."""
        names = self.plan.names
        if len(names) == 1:
            return names[0]
        schema = {"type": "object", "properties": {"name": {"enum": names}}}
        text = "".join([p async for p in self._constrained(prepared, schema, PICK_TOKENS)])
        return json.loads(text)["name"]

    async def _free(self, prepared: PreparedPrompt, held: CallHolder | None) -> AsyncIterator[Text | Done]:
        shaper = ChoiceShaper(self.st.reasoning, self.filters)
        seen = 0
        async for o in self._run(prepared, self._params(prepared)):
            d = shaper.feed(o.text[seen:])
            seen = len(o.text)
            if o.finish_reason is not None:
                tail = shaper.finish()
                d.reasoning += tail.reasoning
                d.content += tail.content
            content = held.feed(d.content) if held is not None else d.content
            if content:
                self.output.append(content)
            if d.reasoning or content:
                yield Text(d.reasoning, content)
            if o.finish_reason is not None:
                yield Done(o.finish_reason)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"  # OpenAI's shape of a tool call id


def _obj(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
