"""A tiny R1-style model for the server tests: random weights, SmolLM2's tokenizer, a chat template that opens
the assistant turn with `<think>\\n` (as R1's does), and a generation_config.json with sampling defaults."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from serverproc import installed_model

# ChatML as SmolLM2 writes it, with R1's habit: the assistant turn opens with "<think>\n" in the prompt.
# `thinking=false` (a chat_template_kwargs value) closes the thought in the prompt, as Qwen3's template does.
R1_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n"
    "{% if thinking is defined and not thinking %}\n</think>\n\n{% endif %}{% endif %}"
)
# The tiny-R1 server's one key, which it reads from R1STACK_API_KEYS.
TINY_R1_KEY = "env-secret-key-00003"
# top_k 1 makes any temperature greedy: a request that leaves top_k unset must come back greedy.
GENERATION_CONFIG = {"temperature": 0.6, "top_p": 0.95, "top_k": 1}


def build_tiny_r1(parent: Path) -> Path:
    """Write the model into `parent`; the folder's name marks it as R1-family, which is how `auto` knows one."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from r1stack.config import DEFAULT_MODEL, Settings
    from r1stack.engine import store
    from r1stack.engine.loader import load_tokenizer

    installed_model()  # fails the test with a clear message when the default model is not installed
    tokenizer = load_tokenizer(store.resolve(DEFAULT_MODEL, Settings().data_dir))
    path = parent / "tiny-deepseek-r1-distill"
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                # Wider than HF's 0.02, so greedy text varies from token to token rather than repeating one;
                # next-token distributions stay broad, so sampled text differs from greedy text almost surely
                # (which is what lets the sampling tests fail).
                p.normal_(0, 0.08)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.chat_template = R1_TEMPLATE
    tokenizer.save_pretrained(path)
    (path / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG))
    assert AutoTokenizer.from_pretrained(path).chat_template == R1_TEMPLATE
    return path
