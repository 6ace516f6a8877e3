"""Request fields -> SamplingParams: OpenAI's names, vLLM's extras, and the model's generation_config defaults."""

from __future__ import annotations

from r1stack.engine.sampling_params import SamplingParams
from r1stack.errors import UserError
from r1stack.server.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields

# Fields generation_config.json may set, under the names SamplingParams uses.
_MIN_TEMPERATURE = 1e-5
_DEFAULTABLE = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def _common(req: SamplingFields, defaults: dict, max_tokens: int) -> dict:
    kw: dict = {}
    for name in _DEFAULTABLE:
        value = getattr(req, name)
        if value is None:
            value = defaults.get(name)
        if value is not None:
            kw[name] = value
    if kw.get("top_k") == 0:
        kw["top_k"] = -1
    # As vLLM does: a temperature this small is greedy (dividing by it would overflow the logits).
    if kw.get("temperature") is not None and kw["temperature"] < _MIN_TEMPERATURE:
        kw["temperature"] = 0.0
    kw.update(
        n=req.n,
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        seed=req.seed,
        stop=req.stop,
        stop_token_ids=req.stop_token_ids,
        ignore_eos=req.ignore_eos,
        max_tokens=max_tokens,
        min_tokens=req.min_tokens,
        skip_special_tokens=req.skip_special_tokens,
        include_stop_str_in_output=req.include_stop_str_in_output,
    )
    if isinstance(req.stop, list) and len(req.stop) > 16:
        raise UserError("stop takes at most 16 strings", param="stop")
    return kw


def chat_params(req: ChatCompletionRequest, defaults: dict, max_tokens: int) -> SamplingParams:
    if req.top_logprobs and not req.logprobs:
        raise UserError("top_logprobs needs logprobs set to true", param="top_logprobs")
    kw = _common(req, defaults, max_tokens)
    if req.logprobs:
        kw["logprobs"] = req.top_logprobs or 0
    return SamplingParams(**kw)


def completion_params(req: CompletionRequest, defaults: dict, max_tokens: int) -> SamplingParams:
    if req.best_of is not None and req.best_of != req.n:
        raise UserError(
            f"best_of={req.best_of} with n={req.n} is not supported; leave best_of unset (or equal to n)",
            param="best_of",
        )
    if req.suffix:
        raise UserError("suffix (fill-in-the-middle) is not supported by this server", param="suffix")
    kw = _common(req, defaults, max_tokens)
    if req.logprobs is not None:
        kw["logprobs"] = req.logprobs
        if req.echo:
            kw["prompt_logprobs"] = req.logprobs
    return SamplingParams(**kw)
