"""Checkpoints into the model: safetensors directories and GGUF files, one tensor at a time.

The model is built on the meta device and materialised once at the target dtype, so memory never holds two full
copies of the weights. GGUF tensors are dequantized here (keeping them packed is the quantization issue's job).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from r1stack.engine.config import SUPPORTED_ARCHITECTURES, ModelConfig
from r1stack.engine.fp8 import keeps_fp8
from r1stack.engine.gguf_file import config_from_gguf, dequantize, open_gguf
from r1stack.engine.models.deepseek_v3 import DeepseekV3ForCausalLM
from r1stack.engine.models.llama import LlamaForCausalLM
from r1stack.engine.quant import loading as quant_loading
from r1stack.engine.quant.formats import from_gguf
from r1stack.engine.store import ModelSource
from r1stack.errors import UserError
from r1stack.progress import track


@dataclass
class LoadedModel:
    model: nn.Module
    config: ModelConfig
    tokenizer: object  # a transformers tokenizer
    generation_defaults: dict = field(default_factory=dict)


def load_model(
    src: ModelSource, device: torch.device, dtype: torch.dtype, quantization: str = "none"
) -> LoadedModel:
    """quantization: none | int8 | int4 (round-to-nearest at load) | awq (an AWQ checkpoint) | gguf (keep the
    file's Q4_0/Q4_1/Q8_0 tensors packed). Quantized checkpoints load quantized whatever is asked."""
    try:
        method = quant_loading.plan(src, quantization)
        reader = open_gguf(src.path) if src.format == "gguf" else None
        cfg = config_from_gguf(reader) if reader is not None else _hf_config(src.path)
        tokenizer = load_tokenizer(src)
        with torch.device("meta"):
            model = _model_class(cfg)(cfg).to(dtype)
        model.to_empty(device=device)
        if hasattr(model, "keep_fp8"):  # asked for, or where the GPU computes in FP8 anyway
            model.keep_fp8 = method == "fp8" or (method == "none" and keeps_fp8(device))
        if reader is not None:
            tensors = _gguf_tensors(reader, cfg, keep_packed=method == "gguf")
        else:
            tensors = _safetensors(src.path)
            if method in ("awq", "int8"):
                tensors = quant_loading.group_safetensors(tensors)
        if hasattr(model, "load_weights"):  # architectures that map their own checkpoint names
            model.load_weights(tensors)
        else:
            _fill(model, tensors)
        packed_embedding = reader is not None and any(
            t.name == "token_embd.weight" and t.tensor_type.name in quant_loading.GGUF_PACKED
            for t in reader.tensors
        )
        quant_loading.finish(model, method, packed_embedding)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, IndexError) as e:
        raise UserError(
            f"cannot load {src.path}: the checkpoint looks damaged or truncated ({type(e).__name__}: "
            f"{str(e)[:200]}); download it again"
        ) from None
    model.eval()
    return LoadedModel(model, cfg, tokenizer, _generation_defaults(src))


def _model_class(cfg: ModelConfig) -> type[nn.Module]:
    return DeepseekV3ForCausalLM if cfg.architecture == "deepseek_v3" else LlamaForCausalLM


def _hf_config(path: Path) -> ModelConfig:
    raw = json.loads((path / "config.json").read_text())
    if raw.get("model_type") not in SUPPORTED_ARCHITECTURES:
        # Refused before AutoConfig, which would ask for remote code for architectures it does not know.
        raise UserError(
            f"unsupported architecture {raw.get('model_type')!r} ({raw.get('architectures')}); this "
            f"engine runs {', '.join(SUPPORTED_ARCHITECTURES.values())}"
        )
    from transformers import AutoConfig

    return ModelConfig.from_hf(AutoConfig.from_pretrained(path))


def load_tokenizer(src: ModelSource):
    from transformers import AutoTokenizer

    if src.format == "hf":
        return AutoTokenizer.from_pretrained(src.path)
    # Converting a GGUF vocabulary takes seconds; a store-installed model keeps the result beside the file.
    cache = src.path.parent / f".tokenizer-{src.path.stem}"
    if (cache / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(cache)
    tokenizer = AutoTokenizer.from_pretrained(src.path.parent, gguf_file=src.path.name)
    if (src.path.parent / ".complete").exists():
        tokenizer.save_pretrained(cache)
    return tokenizer


def _generation_defaults(src: ModelSource) -> dict:
    path = src.path / "generation_config.json" if src.format == "hf" else None
    if path is None or not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {k: raw[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty") if k in raw}


def _fill(model: LlamaForCausalLM, tensors) -> None:
    params = dict(model.named_parameters())
    filled: set[str] = set()
    pending: dict[str, dict[int, object]] = {}  # quantized weight records, per fused shard
    for hf_name, tensor in tensors:
        target = model.param_for(hf_name)
        if target is None:
            continue
        name, shard = target
        if name not in params:
            raise UserError(
                f"the checkpoint has a tensor {hf_name!r} this architecture does not know; "
                f"is config.json from the same model?"
            )
        p = params[name].data
        if shard is not None:
            sizes = model.shard_sizes(name)
            p = p.narrow(0, sum(sizes[:shard]), sizes[shard])
            key = f"{name}#{shard}"
        else:
            key = name
        if quant_loading.is_record(tensor):
            if tuple(p.shape) != tuple(tensor.q.shape):
                raise UserError(
                    f"tensor {hf_name} has shape {tuple(tensor.q.shape)}, expected {tuple(p.shape)}: "
                    f"config and weights disagree"
                )
            pending.setdefault(name, {})[shard or 0] = tensor
            filled.add(key)
            continue
        if tuple(p.shape) != tuple(tensor.shape):
            raise UserError(
                f"tensor {hf_name} has shape {tuple(tensor.shape)}, expected {tuple(p.shape)}: "
                f"config and weights disagree"
            )
        p.copy_(tensor)
        filled.add(key)
    expected = set()
    for name in params:
        if "qkv_proj" in name or "gate_up_proj" in name:
            expected |= {f"{name}#{i}" for i in range(len(model.shard_sizes(name)))}
        elif not (name == "lm_head.weight" and model.cfg.tie_word_embeddings):
            expected.add(name)
    missing = sorted(expected - filled)
    if missing:
        raise UserError(
            f"the checkpoint lacks {len(missing)} tensors (first: {missing[0]}); it is incomplete, "
            f"download it again"
        )
    if model.cfg.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    quant_loading.install(model, pending)


def _safetensors(path: Path):
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    names = []
    handles = [safe_open(str(f), framework="pt") for f in files]
    for h in handles:
        names += [(h, k) for k in h.keys()]
    for h, k in track(names, "loading weights"):
        yield k, h.get_tensor(k)


# GGUF names -> transformers names (llama.cpp's convention for Llama and Qwen2).
_GGUF_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _gguf_tensors(reader, cfg: ModelConfig, keep_packed: bool = False):
    """keep_packed: Q4_0/Q4_1/Q8_0 linear weights come as quantized records (repacked, never dequantized)."""
    for t in track(reader.tensors, "loading weights"):
        parts = t.name.split(".")
        if parts[0] == "blk":
            name = f"model.layers.{parts[1]}.{_GGUF_NAMES[parts[2]]}.{parts[3]}"
        else:
            name = f"{_GGUF_NAMES[parts[0]]}.{parts[1]}"
        with warnings.catch_warnings():  # the file is memory-mapped read-only; we only read it
            warnings.simplefilter("ignore", UserWarning)
            kind = t.tensor_type.name
            if (
                keep_packed
                and kind in quant_loading.GGUF_PACKED
                and parts[0] != "token_embd"
                and len(t.shape) == 2
            ):
                raw = torch.from_numpy(np.asarray(t.data).view(np.uint8).reshape(-1))
                tensor = from_gguf(kind, raw, [int(x) for x in reversed(t.shape)])
            else:
                tensor = dequantize(t)
        # llama.cpp permutes Llama's q/k rows for its rotary layout; undo it (Qwen2 is not permuted).
        if cfg.architecture == "llama" and parts[-2] in ("attn_q", "attn_k"):
            heads = cfg.num_heads if parts[-2] == "attn_q" else cfg.num_kv_heads
            if quant_loading.is_record(tensor):
                tensor = tensor.rows(_unpermute(torch.arange(tensor.q.shape[0]), heads))
            else:
                tensor = _unpermute(tensor, heads)
        yield name, tensor


def _unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    dim = w.shape[0] // heads // 2
    return w.reshape(heads, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
