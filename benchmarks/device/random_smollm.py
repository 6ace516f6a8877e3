"""A SmolLM2-shaped Llama with random weights and the default model's tokenizer: the real file is too big to carry
to the device machine, and the shapes (not the weights) decide speed and kernel coverage."""

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained("gpu-run/tokenizer")
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" not in n:
                p.normal_(0, 0.05)
    m.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print("wrote", out)
    return out
