"""Chat messages -> prompt text through the model's own chat template (transformers renders it)."""

from __future__ import annotations

from r1stack.errors import UserError


def render_chat(
    tokenizer, messages: list[dict], add_generation_prompt: bool = True, **template_kwargs
) -> str:
    if not messages:
        raise UserError("messages is empty; send at least one message")
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError("this model has no chat template; use the completions API with a plain prompt")
    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **template_kwargs
        )
    except Exception as e:  # jinja errors from the template itself: the messages did not fit it
        raise UserError(f"the chat template rejected these messages: {e}") from None
