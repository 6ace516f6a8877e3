"""Greedy output is token-for-token what transformers' generate produces on the same checkpoint (fp32)."""

from __future__ import annotations

import pytest
import torch

from r1stack import LLM, SamplingParams

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "中国的首都是",
    "请用一句话介绍一下长城。",
    "import numpy as np\n\n# compute the mean of a list\n",
    "Q: What is 12 times 7?\nA:",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
]


def _hf_greedy(model, tokenizer, prompt: str, n: int) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def test_default_gguf_matches_transformers(llm_fp32, default_gguf):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(
        default_gguf.parent, gguf_file=default_gguf.name, dtype=torch.float32
    )
    tokenizer = llm_fp32.get_tokenizer()
    params = SamplingParams(temperature=0, max_tokens=64, min_tokens=64)
    ours = llm_fp32.generate(PROMPTS, params)
    for prompt, out in zip(PROMPTS, ours, strict=True):
        assert out.outputs[0].token_ids == _hf_greedy(hf, tokenizer, prompt, 64), prompt


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, llm_fp32):
    """A small random Qwen2 (q/k/v biases set non-zero) written as safetensors with a real tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = llm_fp32.get_tokenizer()
    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.3 if p.dim() == 1 else 0.08)  # biases visibly non-zero; logits well separated
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path, model


def test_tiny_qwen2_with_biases_matches_transformers(tiny_qwen2, data_dir):
    path, hf = tiny_qwen2
    assert hf.model.layers[0].self_attn.q_proj.bias.abs().sum() > 0
    llm = LLM(str(path), dtype="float32", data_dir=data_dir, kv_cache_bytes=64 << 20)
    assert llm.engine.model_info.architecture == "qwen2"
    tokenizer = llm.get_tokenizer()
    params = SamplingParams(temperature=0, max_tokens=32, min_tokens=32)
    outs = llm.generate(PROMPTS, params)
    for prompt, out in zip(PROMPTS, outs, strict=True):
        assert out.outputs[0].token_ids == _hf_greedy(hf, tokenizer, prompt, 32), prompt
