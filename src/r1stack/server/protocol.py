"""The HTTP edge: OpenAI-shaped request and response models (vLLM's extra sampling fields included).

Requests accept unknown fields (clients such as LangChain send extras) but validate every field we use;
ranges live in the schema so that the OpenAPI document, and a fuzzer reading it, knows them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# OpenAI allows up to 128 choices; a CPU box would not survive that, so the schema says so.
MAX_N = 16
MAX_STOP = 16

StopField = Annotated[str | list[str] | None, Field(default=None)]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            # JSON can carry "\\ud800", but it is no character: the tokenizer could not encode it.
            raise ValueError(f"{path or 'a string'} holds a lone UTF-16 surrogate; send valid Unicode text")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{path}[{i}]")


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        _check_text(data)
        return data


class StreamOptions(OpenAIModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class SamplingFields(OpenAIModel):
    """Fields shared by chat and completions: OpenAI's names where OpenAI has one, vLLM's for the rest."""

    model: str | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    # Below ~0.01 a penalty divides logits into infinities; no one means that.
    repetition_penalty: float | None = Field(None, ge=0.01, le=10)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: StopField
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(None, max_length=64)
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


# --- chat -------------------------------------------------------------------------------------------------------


class TextPart(OpenAIModel):
    type: Literal["text"]
    text: str


class FunctionDefinition(OpenAIModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    # A JSON schema (type object) of the arguments; absent means the function takes none.
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(OpenAIModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(OpenAIModel):
    name: str


class NamedToolChoice(OpenAIModel):
    type: Literal["function"]
    function: FunctionName


class FunctionCall(OpenAIModel):
    name: str
    arguments: str = "{}"  # a JSON object as a string, as OpenAI sends it


class ToolCall(OpenAIModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenAIModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    # An assistant turn that called tools, and (role "tool") the answer to one of those calls.
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)
    tool_call_id: str | None = None
    # Earlier turns of an R1 conversation may echo their reasoning back; DeepSeek says to drop it.
    reasoning_content: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class JsonSchemaFormat(BaseModel):
    name: str = Field("answer", max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(..., alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's structured output: `json_schema` is enforced while the answer is generated."""

    type: Literal["text", "json_schema", "json_object"]
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool = True
    # r1stack's own: ground the answer on knowledge bases and/or a web search (sources come back beside it).
    knowledge_bases: list[str] | None = Field(
        None,
        max_length=16,
        description="r1stack: ground the answer on these knowledge bases; the top chunks go into the prompt as "
        "numbered sources the model cites as [1], [2], and come back in `sources`.",
    )
    web_search: bool = Field(
        False,
        description="r1stack: search the web through the search proxy first; results become numbered sources "
        "(their URLs come back in `sources`). If search is unavailable, `notices` says why.",
    )
    top_k_sources: int | None = Field(
        None,
        ge=1,
        le=20,
        description="r1stack: how many chunks/results to use (default: kb.top_k, websearch.top_k).",
    )
    # OpenAI function calling. A function named `web_search` is run by the stack itself (through the search proxy).
    tools: list[ToolDefinition] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None


class ChatLogprobTop(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatLogprobToken(ChatLogprobTop):
    top_logprobs: list[ChatLogprobTop] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[ChatLogprobToken] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = Field(
        None, description="DeepSeek-R1 reasoning (the text inside <think>...</think>), apart from the answer."
    )
    tool_calls: list[dict] = Field(default_factory=list)


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Source(BaseModel):
    """A document chunk or web page the answer was grounded on; `id` is the number the model cites."""

    id: int
    kind: Literal["kb", "web"]
    title: str | None = None
    url: str | None = None
    knowledge_base: str | None = None
    document: str | None = None
    chunk: int | str | None = None
    score: float | None = None
    text: str | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    sources: list[Source] | None = None
    notices: list[str] | None = None


class DeltaMessage(BaseModel):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    # Streamed tool calls: the first piece of a call has index, id, type and function.name; later pieces add to
    # function.arguments, as OpenAI streams them.
    tool_calls: list[dict] | None = None


class ChatStreamChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatStreamChoice]
    usage: Usage | None = None
    sources: list[Source] | None = None
    notices: list[str] | None = None


# --- completions --------------------------------------------------------------------------------------------------


class CompletionRequest(SamplingFields):
    # A string, a list of strings, a token-id list or a list of token-id lists, as OpenAI accepts.
    prompt: str | list[str] | list[Annotated[int, Field(ge=0)]] | list[list[Annotated[int, Field(ge=0)]]] = (
        Field(...)
    )
    max_tokens: int | None = Field(16, ge=1)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=MAX_N)


class CompletionLogprobs(BaseModel):
    text_offset: list[int] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# --- embeddings, models, tokenizer --------------------------------------------------------------------------------


class EmbeddingRequest(OpenAIModel):
    model: str | None = None
    input: str | list[str] = Field(...)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "r1stack"
    root: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeRequest(OpenAIModel):
    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool = True
    add_generation_prompt: bool = True


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(OpenAIModel):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]] = Field(..., max_length=1_000_000)


class DetokenizeResponse(BaseModel):
    prompt: str


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
