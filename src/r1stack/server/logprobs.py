"""Engine logprobs ({token_id: Logprob} per position) in OpenAI's two shapes: chat and legacy completions."""

from __future__ import annotations

from r1stack.engine.outputs import PositionLogprobs
from r1stack.server.protocol import ChatLogprobs, ChatLogprobToken, ChatLogprobTop, CompletionLogprobs


def _text(tokenizer, token_id: int, lp) -> str:
    if lp is not None and lp.decoded_token is not None:
        return lp.decoded_token
    return tokenizer.decode([token_id])


def _top(position: PositionLogprobs, k: int) -> list[tuple[int, object]]:
    ranked = sorted(position.items(), key=lambda kv: kv[1].rank if kv[1].rank is not None else 1 << 30)
    return [(tid, lp) for tid, lp in ranked if lp.rank is not None and lp.rank <= k][:k]


def _safe(x: float) -> float:
    # JSON has no -inf; OpenAI clients expect a number.
    return max(x, -9999.0)


def chat_logprobs(tokenizer, token_ids: list[int], positions: list[PositionLogprobs], k: int) -> ChatLogprobs:
    content = []
    for tid, pos in zip(token_ids, positions, strict=False):
        lp = pos.get(tid)
        text = _text(tokenizer, tid, lp)
        tops = [
            ChatLogprobTop(
                token=(t := _text(tokenizer, i, alt)), logprob=_safe(alt.logprob), bytes=list(t.encode())
            )
            for i, alt in _top(pos, k)
        ]
        content.append(
            ChatLogprobToken(
                token=text,
                logprob=_safe(lp.logprob if lp else -9999.0),
                bytes=list(text.encode()),
                top_logprobs=tops,
            )
        )
    return ChatLogprobs(content=content)


def completion_logprobs(
    tokenizer,
    token_ids: list[int],
    positions: list[PositionLogprobs | None],
    k: int,
    text_offset: int = 0,
) -> CompletionLogprobs:
    out = CompletionLogprobs()
    offset = text_offset
    for tid, pos in zip(token_ids, positions, strict=False):
        lp = pos.get(tid) if pos else None
        text = _text(tokenizer, tid, lp)
        out.tokens.append(text)
        out.text_offset.append(offset)
        offset += len(text)
        if pos is None:  # the first prompt token has no logprob
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            continue
        out.token_logprobs.append(_safe(lp.logprob) if lp else None)
        out.top_logprobs.append({_text(tokenizer, i, alt): _safe(alt.logprob) for i, alt in _top(pos, k)})
    return out
