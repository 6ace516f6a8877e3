"""Swap a loaded model's nn.Linear layers for quantized ones (round-to-nearest at load time)."""

from __future__ import annotations

from torch import nn

from r1stack.engine.quant.formats import GROUP_SIZES, Int4Weights, Int8Weights, int4_rtn, int8_rtn
from r1stack.engine.quant.linear import Int4Linear, Int8Linear, make_linear
from r1stack.errors import UserError


def linear_names(model: nn.Module, include_lm_head: bool = True) -> list[str]:
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and (include_lm_head or n != "lm_head")
    ]


def pick_group_size(model: nn.Module, requested: int | None) -> int:
    """The requested int4 group size, or (None) the largest of 128/64/32 that divides every layer's input."""
    widths = {model.get_submodule(n).in_features for n in linear_names(model)}
    choices = [requested] if requested else sorted(GROUP_SIZES, reverse=True)
    for g in choices:
        if g not in GROUP_SIZES:
            raise UserError(f"int4 group size {g} is not supported; use 32, 64 or 128")
        if all(w % g == 0 for w in widths):
            return g
    raise UserError(
        f"group size {requested} does not divide the layer widths {sorted(widths)}; "
        f"use one of {[g for g in GROUP_SIZES if all(w % g == 0 for w in widths)] or 'none'}"
    )


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize_model(
    model: nn.Module, method: str, group_size: int | None = None, include_lm_head: bool = True
) -> nn.Module:
    """In place: every nn.Linear (the tied lm_head gets its own quantized copy; the embedding stays float)."""
    if method not in ("int8", "int4"):
        raise UserError(f"unknown quantization {method!r}; use int8 or int4")
    g = pick_group_size(model, group_size) if method == "int4" else None
    for name in linear_names(model, include_lm_head):
        lin = model.get_submodule(name)
        w = lin.weight.detach()
        q = int8_rtn(w) if method == "int8" else int4_rtn(w, g)
        replace_module(model, name, make_linear(q, lin.bias, w.device))
    return model


def quantized_bytes(model: nn.Module) -> int:
    """Bytes held by the quantized layers' buffers (for the memory column of the benchmark)."""
    return sum(
        b.nbytes for m in model.modules() if isinstance(m, (Int8Linear, Int4Linear)) for b in m.buffers()
    )


__all__ = [
    "Int4Weights",
    "Int8Weights",
    "linear_names",
    "pick_group_size",
    "quantize_model",
    "replace_module",
    "quantized_bytes",
]
