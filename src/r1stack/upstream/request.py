"""Our SamplingParams as the fields of an OpenAI request body (vLLM's names for its extras), sending only what
differs from the defaults so that an upstream's own defaults (e.g. R1's temperature 0.6) still apply."""

from __future__ import annotations

from r1stack.engine.sampling_params import SamplingParams

_DEFAULTS = SamplingParams()
# OpenAI's own fields first, then the extras vLLM and SGLang accept (others ignore unknown fields).
_FIELDS = (
    "n",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "top_k",
    "min_p",
    "repetition_penalty",
    "stop_token_ids",
    "ignore_eos",
    "min_tokens",
    "skip_special_tokens",
    "include_stop_str_in_output",
)


def body_fields(params: SamplingParams) -> dict:
    body: dict = {"max_tokens": params.max_tokens} if params.max_tokens is not None else {}
    for name in _FIELDS:
        value = getattr(params, name)
        if value != getattr(_DEFAULTS, name):
            body[name] = value
    if params.stop:
        body["stop"] = list(params.stop)
    return body
