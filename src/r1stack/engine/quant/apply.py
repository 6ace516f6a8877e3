"""Swap a loaded model's nn.Linear layers for quantized ones (round-to-nearest at load time)."""

from __future__ import annotations

from torch import nn

from r1stack.engine.quant.formats import GROUP_SIZES, int4_rtn, int8_rtn
from r1stack.engine.quant.linear import Int4Linear, Int8Linear, make_linear
from r1stack.errors import UserError


def linear_names(model: nn.Module, include_lm_head: bool = True) -> list[str]:
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and (include_lm_head or n != "lm_head")
    ]


def pick_group_size(model: nn.Module, requested: int | None, include_lm_head: bool = False) -> int:
    """The requested int4 group size, or (None) the smallest, 32: on SmolLM2-135M round-to-nearest perplexity
    on GPL-3 rose 20% at group 32 and 33% at group 64 (benchmarks/quant.py), so quality wins by default."""
    widths = {model.get_submodule(n).in_features for n in linear_names(model, include_lm_head)}
    g = requested or GROUP_SIZES[0]
    if g not in GROUP_SIZES:
        raise UserError(f"int4 group size {g} is not supported; use 32, 64 or 128")
    if any(w % g for w in widths):
        fits = [c for c in GROUP_SIZES if all(w % c == 0 for w in widths)]
        raise UserError(
            f"group size {g} does not divide the layer widths {sorted(widths)}; use one of {fits}"
        )
    return g


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize_model(
    model: nn.Module, method: str, group_size: int | None = None, lm_head: str | None = "int8"
) -> nn.Module:
    """In place: every nn.Linear still in float. The lm_head (a tied one gets its own quantized copy; the
    embedding stays float) is int8 by default even for int4: at int4 it alone cost SmolLM2-135M about 8%
    perplexity, at int8 0.3%, and int8 still halves its decode matmul. lm_head=None leaves it in float."""
    if method not in ("int8", "int4"):
        raise UserError(f"unknown quantization {method!r}; use int8 or int4")
    g = pick_group_size(model, group_size) if method == "int4" else None
    for name in linear_names(model, include_lm_head=True):
        kind = method
        if name == "lm_head":
            if lm_head is None:
                continue
            kind = lm_head
        lin = model.get_submodule(name)
        w = lin.weight.detach()
        if kind == "int8":
            q = int8_rtn(w)
        else:
            q = int4_rtn(w, g if name != "lm_head" else pick_group_size(model, group_size, True))
        replace_module(model, name, make_linear(q, lin.bias, w.device))
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes the model's weights hold (the memory column of the benchmark): parameters, the quantized layers'
    buffers, and oneDNN-packed bf16 weights, which are opaque tensors outside both (their logical size)."""
    from r1stack.engine.packed_linear import PackedLinear

    total = sum(p.nbytes for p in model.parameters())
    for m in model.modules():
        if isinstance(m, (Int8Linear, Int4Linear)):
            total += sum(b.nbytes for b in m.buffers())
        elif isinstance(m, PackedLinear):
            total += m.in_features * m.out_features * m.packed.element_size()
    return total
