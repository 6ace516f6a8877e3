"""Write a quantized model as a Hugging Face directory the loader (and AutoAWQ-aware tools) read back: int4 in
AutoAWQ's GEMM layout (qweight, qzeros, scales), int8 as an int8 `weight` plus a per-row `weight_scale`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from r1stack.engine.config import ModelConfig
from r1stack.engine.quant.formats import int4_rtn_parts, int8_rtn, to_awq

_SPLITS = {  # our fused layers -> the checkpoint's names, in row order
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
}


def hf_config(cfg: ModelConfig, quantization: dict) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM" if cfg.architecture == "qwen2" else "LlamaForCausalLM"],
        "model_type": cfg.architecture,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "attention_bias": cfg.attention_bias,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_ids[0] if len(cfg.eos_token_ids) == 1 else cfg.eos_token_ids,
        "torch_dtype": "float16",
        "quantization_config": quantization,
    }


def _split(model: nn.Module, name: str, w: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    for fused, parts in _SPLITS.items():
        if name.endswith(fused):
            sizes = model.shard_sizes(f"{name}.weight")
            base = name.removesuffix(fused)
            return [(base + p, t) for p, t in zip(parts, w.split(sizes), strict=True)]
    return [(name, w)]


@torch.inference_mode()
def save_quantized(model: nn.Module, tokenizer, out: Path, method: str, group_size: int) -> dict:
    """model: a float Llama/Qwen2 model from the loader (AWQ scales already folded in for method 'awq')."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    tensors: dict[str, torch.Tensor] = {}
    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"}
    for name, p in model.named_parameters():
        module, _, kind = name.rpartition(".")
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        hf = "lm_head.weight" if name == "lm_head.weight" else f"model.{name}"
        if module not in linears:
            tensors[hf] = p.detach().half().contiguous()
            continue
        for part, w in _split(model, f"model.{module}", p.detach().float()):
            if kind == "bias":
                tensors[f"{part}.bias"] = w.half().contiguous()
            elif method == "int8":
                q = int8_rtn(w)
                tensors[f"{part}.weight"], tensors[f"{part}.weight_scale"] = q.q.contiguous(), q.scale
            else:
                for k, v in to_awq(*int4_rtn_parts(w, group_size)).items():
                    tensors[f"{part}.{k}"] = v
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    if method == "int8":
        qcfg = {"quant_method": "r1stack-int8", "bits": 8, "scheme": "per-output-channel symmetric"}
    else:
        qcfg = {
            "quant_method": "awq",
            "bits": 4,
            "group_size": group_size,
            "zero_point": True,
            "version": "gemm",
            "modules_to_not_convert": ["lm_head"],
            "search": method == "awq",
        }
    (out / "config.json").write_text(json.dumps(hf_config(cfg, qcfg), indent=2))
    tokenizer.save_pretrained(out)
    return {"tensors": len(tensors), "bytes": sum(t.nbytes for t in tensors.values())}
