"""The decode step of a Llama-architecture model quantized onto the VNNI kernels, eager on CPU, as a model's
decode layer function (model.forward_decode). Each layer is the very C++ calls the modules make, in the same
order (cpu_fused's norm, rotary and SiLU x up, cpu_gemv's matmuls, cpu_attention's paged attention; its
store_kv writes the cache bytes index_copy_ writes), so the numbers are the module path's; what goes is the ~200 us per layer of module calls, attribute lookups and
dispatch checks around them, which at one sequence was a third of a token's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1stack.engine import cpu_attention, cpu_fused
from r1stack.engine.quant import cpu_gemv
from r1stack.engine.quant.linear import Int4Linear, Int8Linear


@dataclass
class _Layer:
    """One layer's weights as the kernels take them, gathered once."""

    ln1: torch.Tensor
    eps1: float
    ln2: torch.Tensor
    eps2: float
    qkv: tuple
    qkv_bias: torch.Tensor | None
    o: tuple
    gate_up: tuple
    down: tuple
    sizes: list[int]
    h: int
    hkv: int
    d: int
    scale: float


def _gemv_args(lin) -> tuple:
    if isinstance(lin, Int4Linear):
        return (lin.qweight, lin.scales, lin.zeros, lin.group_size, 4)
    return (lin.qweight, lin.scales, lin.scales, 0, 8)


def _vnni(lin, bias_ok: bool = False) -> bool:
    return (
        isinstance(lin, (Int4Linear, Int8Linear)) and lin.kernel == "vnni" and (bias_ok or lin.bias is None)
    )


def applies(model: torch.nn.Module) -> bool:
    """A Llama-architecture model in bf16 whose layer matmuls all run on the VNNI kernels, with the C++ kernels
    built."""
    layers = getattr(model, "layers", None)
    if (
        not layers
        or not hasattr(model, "forward_decode")
        or model.embed_tokens.weight.dtype != torch.bfloat16
    ):
        return False
    for layer in layers:
        a, m = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if not (hasattr(a, "qkv_proj") and hasattr(m, "gate_up_proj")):
            return False
        if not (
            _vnni(a.qkv_proj, bias_ok=True)
            and _vnni(a.o_proj)
            and _vnni(m.gate_up_proj)
            and _vnni(m.down_proj)
        ):
            return False
    return cpu_gemv.available() and cpu_fused.available() and cpu_attention.available()


def _gather(layer) -> _Layer:
    a, m, n1, n2 = layer.self_attn, layer.mlp, layer.input_layernorm, layer.post_attention_layernorm
    p = _Layer(
        n1.weight.detach(),
        n1.eps,
        n2.weight.detach(),
        n2.eps,
        _gemv_args(a.qkv_proj),
        a.qkv_proj.bias,
        _gemv_args(a.o_proj),
        _gemv_args(m.gate_up_proj),
        _gemv_args(m.down_proj),
        [a.h * a.d, a.hkv * a.d, a.hkv * a.d],
        a.h,
        a.hkv,
        a.d,
        a.scale,
    )
    layer.__dict__["_cpu_decode"] = p  # not a submodule or buffer: the same tensors, looked up once
    return p


def decode_layer(layer, x, residual, cos, sin, *kv):
    """compiled.eager_decode_layer's signature; kv = (k_cache, v_cache, slot_mapping, block_tables,
    context_lens, block_size)."""
    k_cache, v_cache, slot_mapping, block_tables, context_lens, block_size = kv
    p = layer.__dict__.get("_cpu_decode") or _gather(layer)
    fused, gemv = cpu_fused._module(), cpu_gemv._module().gemv
    h, residual = fused.add_rms_norm(x, residual, p.ln1, p.eps1)
    qkv = gemv(h, *p.qkv)
    if p.qkv_bias is not None:
        qkv = qkv + p.qkv_bias
    q, k, v = qkv.split(p.sizes, dim=-1)
    q, k = fused.rotary(q.view(-1, p.h, p.d), k.view(-1, p.hkv, p.d), cos, sin)
    attn = cpu_attention._build()
    attn.store_kv(k_cache, v_cache, slot_mapping, k, v.view(-1, p.hkv, p.d))
    o = attn.paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, p.scale)
    h = gemv(o.view(-1, p.h * p.d), *p.o)
    h, residual = fused.add_rms_norm(h, residual, p.ln2, p.eps2)
    return gemv(fused.silu_mul(gemv(h, *p.gate_up)), *p.down), residual
