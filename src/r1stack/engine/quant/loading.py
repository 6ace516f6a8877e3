"""The loader's quantization side: which checkpoints are quantized, grouping their tensors into weight records,
and turning the filled model's linears into quantized layers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from r1stack.engine.quant.apply import quantize_model, replace_module
from r1stack.engine.quant.formats import Int4Weights, Int8Weights, concat, from_awq
from r1stack.engine.quant.linear import make_linear
from r1stack.errors import UserError

METHODS = ("none", "int8", "int4", "awq", "gguf", "fp8")
GGUF_PACKED = ("Q4_0", "Q4_1", "Q8_0")
AWQ_PARTS = ("qweight", "qzeros", "scales")


def checkpoint_quantization(src) -> str:
    """What a checkpoint already is: 'awq' or 'int8' (written by `r1stack quantize` or AutoAWQ), else 'none'."""
    if src.format != "hf":
        return "none"
    cfg = json.loads((Path(src.path) / "config.json").read_text()).get("quantization_config") or {}
    method = cfg.get("quant_method", "none")
    if method == "awq" and (
        cfg.get("bits", cfg.get("w_bit", 4)) != 4 or cfg.get("version", "gemm").lower() != "gemm"
    ):
        raise UserError(
            "this AWQ checkpoint is not 4-bit GEMM layout; only AutoAWQ's GEMM 4-bit layout loads"
        )
    if method in ("gptq", "bitsandbytes", "compressed-tensors"):
        # GPTQ packs qweight along the input dimension with the same tensor names as AWQ: refuse, never misread.
        raise UserError(
            f"checkpoint quantization {method!r} is not supported; use an AWQ (GEMM) or bf16 checkpoint"
        )
    # Other methods (DeepSeek's fp8 blocks, ...) are the architecture's own loader's business.
    return {"r1stack-int8": "int8", "awq": "awq"}.get(method, "none")


def is_fp8_checkpoint(src) -> bool:
    if src.format != "hf":
        return False
    cfg = json.loads((Path(src.path) / "config.json").read_text()).get("quantization_config") or {}
    return cfg.get("quant_method") == "fp8"


def plan(src, quantization: str) -> str:
    """Check the asked-for method against the checkpoint; returns what the loader will do."""
    if quantization not in METHODS:
        raise UserError(f"unknown quantization {quantization!r}; use one of {', '.join(METHODS)}")
    if quantization == "fp8":
        # DeepSeek's FP8 blocks kept as they are (the default on GPUs with FP8 support; see engine/fp8.py).
        if not is_fp8_checkpoint(src):
            raise UserError(
                "--quantization fp8 keeps the weights of a block-scaled FP8 checkpoint (DeepSeek-V3/R1) as FP8; "
                "this model has none: use none, int8 or int4"
            )
        return "fp8"
    stored = checkpoint_quantization(src)
    if stored != "none":
        if quantization not in ("none", stored):
            raise UserError(
                f"{src.path} is already quantized ({stored}); load it with --quantization {stored}"
            )
        return stored
    if quantization == "gguf" and src.format != "gguf":
        raise UserError(
            "--quantization gguf keeps a GGUF file's packed tensors; this model is not a .gguf file"
        )
    if quantization == "awq":
        raise UserError(
            f"{src.path} is not an AWQ checkpoint; make one with `r1stack quantize MODEL --method awq "
            f"--calib FILE --out DIR` and serve DIR"
        )
    return quantization


def group_safetensors(items):
    """(name, tensor) pairs -> the same, with AWQ triples and int8 (weight, weight_scale) pairs merged into one
    weight record named `<layer>.weight`."""
    held: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in items:
        prefix, _, part = name.rpartition(".")
        if part in AWQ_PARTS or part == "weight_scale" or (part == "weight" and tensor.dtype == torch.int8):
            parts = held.setdefault(prefix, {})
            parts[part] = tensor
            if all(p in parts for p in AWQ_PARTS):
                yield f"{prefix}.weight", from_awq(parts["qweight"], parts["qzeros"], parts["scales"])
                del held[prefix]
            elif "weight" in parts and "weight_scale" in parts:
                yield f"{prefix}.weight", Int8Weights(parts["weight"], parts["weight_scale"].float().view(-1))
                del held[prefix]
            continue
        yield name, tensor
    if held:
        first = next(iter(held))
        raise UserError(
            f"the checkpoint's quantized layer {first} lacks parts (has {sorted(held[first])}); "
            f"it is incomplete"
        )


def is_record(tensor) -> bool:
    return isinstance(tensor, (Int4Weights, Int8Weights))


def install(model: nn.Module, pending: dict[str, dict[int, object]]) -> None:
    """Replace each linear whose weight came as quantized records (one per fused shard) with a quantized layer."""
    for param, shards in pending.items():
        module = param.removesuffix(".weight")
        lin = model.get_submodule(module)
        w = concat([shards[i] for i in sorted(shards)])
        replace_module(model, module, make_linear(w, lin.bias, lin.weight.device))


def finish(model: nn.Module, method: str, embedding_packed: bool = False) -> None:
    """After filling, quantize the linears still in float: all of them for round-to-nearest methods; the lm_head
    alone (int8) for packed checkpoints (AWQ leaves it float; its decode matmul is the largest one). A GGUF lm_head tied
    to a Q8_0 embedding becomes int8 (the values the file holds); a float one stays float."""
    if method not in ("none", "fp8") and not hasattr(model, "param_for"):
        # Only the Llama/Qwen2 model's layers are tested quantized; MoE experts and MLA are not yet.
        raise UserError(
            f"--quantization {method} is implemented for Llama and Qwen2 models; load this one with none"
        )
    if method in ("int8", "int4"):
        quantize_model(model, method)
    elif method == "awq":
        quantize_model(model, "int8")  # only the lm_head is left
    elif method == "gguf" and embedding_packed:
        quantize_model(model, "int8")
