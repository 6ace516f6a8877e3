"""OpenAI `response_format` on chat requests: a JSON schema the answer must satisfy, enforced while it is generated
(the engine's JSON-schema logits processor) or, on a gateway, handed to the upstream that enforces it."""

from __future__ import annotations

import json

from r1stack.engine.constrained import json_schema_processor
from r1stack.engine.sampling_params import SamplingParams
from r1stack.errors import UserError
from r1stack.pipeline import PreparedPrompt
from r1stack.server.protocol import ChatCompletionRequest
from r1stack.server.tools import enforceable


def apply_response_format(
    req: ChatCompletionRequest, engine, params: SamplingParams, prepared: PreparedPrompt
) -> None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return
    if fmt.type == "json_object" or fmt.json_schema is None:
        raise UserError(
            'response_format needs a schema: send {"type": "json_schema", "json_schema": {"name": ..., '
            '"schema": {...}}}; free-form json_object is not supported',
            param="response_format",
        )
    if engine.tokenizer is None:  # an upstream backend: it enforces the schema itself
        prepared.response_format = fmt.model_dump(by_alias=True, exclude_none=True)
        return
    schema = _enforced(fmt.json_schema.schema_)
    proc = json_schema_processor(schema, engine.tokenizer, engine.model_info.eos_token_ids, params.max_tokens)
    params.logits_processors = [*params.logits_processors, proc]
    # The grammar alone decides where the JSON ends: stop strings, min_tokens and ignore_eos would fight it.
    params.stop, params.min_tokens, params.ignore_eos = [], 0, False


def _enforced(schema: dict) -> dict:
    """The schema as the automaton writes it; a 400 naming the first property it cannot enforce, so that an
    answer never fails the caller's schema silently."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not props or schema.get("type", "object") != "object":
        raise UserError("response_format's schema must be an object with properties", param="response_format")
    out = {}
    for name, spec in props.items():
        out[name] = enforceable(spec)
        if out[name] is None:
            raise UserError(
                f"response_format: property {name!r} ({json.dumps(spec)[:120]}) cannot be enforced while "
                "generating; supported: string (no pattern/format/length), string enum, integer/number with a "
                "range of at most 10,000, and arrays of those",
                param="response_format",
            )
    return {"type": "object", "properties": out}
