"""AWQ's activation-aware scale search: per layer group, the per-input-channel scale s = mean|x|^alpha (alpha on
a grid) that minimises the int4 layer's output error on calibration text; s is folded into the operation before
the layer (an RMSNorm's weight, or the up projection's rows), so the float model computes the same function."""

from __future__ import annotations

import torch
from torch import nn

from r1stack.engine.attention import AttentionMetadata, PrefillSpan
from r1stack.engine.quant.formats import fake_int4
from r1stack.progress import track


@torch.inference_mode()
def prefill_hidden(model: nn.Module, ids: list[int]) -> torch.Tensor:
    """Final hidden states of one sequence run as a single prefill on a throwaway KV cache."""
    cfg = model.cfg
    dev = next(model.parameters()).device
    dtype = model.embed_tokens.weight.dtype
    n = len(ids)
    if getattr(model.rotary, "cos", None) is None or model.rotary.cos.shape[0] < n:
        model.rotary.build(dev, max(n, 1))
    kv = [
        (
            torch.zeros(n, cfg.num_kv_heads, cfg.head_dim, dtype=dtype, device=dev),
            torch.zeros(n, cfg.num_kv_heads, cfg.head_dim, dtype=dtype, device=dev),
        )
        for _ in range(cfg.num_layers)
    ]
    meta = AttentionMetadata(
        slot_mapping=torch.arange(n, device=dev),
        num_decode=0,
        decode_slots=None,
        decode_mask=None,
        prefills=[PrefillSpan(0, n, 0, None)],
    )
    pos = torch.arange(n, device=dev)
    return model(torch.tensor(ids, device=dev), pos, kv, meta)


class _Capture:
    """Per linear: running mean |x| per input channel over every token, plus a fixed subsample of rows."""

    def __init__(self, keep: int):
        self.keep, self.sum, self.count, self.rows = keep, None, 0, []

    def __call__(self, module, args, output):
        x = args[0].detach().float().reshape(-1, args[0].shape[-1])
        s = x.abs().sum(0)
        self.sum = s if self.sum is None else self.sum + s
        self.count += x.shape[0]
        have = sum(r.shape[0] for r in self.rows)
        if have < self.keep:
            step = max(1, x.shape[0] // max(1, self.keep // 4))
            self.rows.append(x[::step][: self.keep - have].clone())

    def mean(self) -> torch.Tensor:
        return self.sum / self.count

    def x(self) -> torch.Tensor:
        return torch.cat(self.rows)


def search_scale(
    w: torch.Tensor, x: torch.Tensor, x_mean: torch.Tensor, group_size: int, grid: int = 20
) -> tuple[torch.Tensor, float, float]:
    """The scale (and its loss, and the plain round-to-nearest loss) for one weight [N, K] given inputs [T, K]."""
    w = w.float()
    ref = x @ w.t()
    best, best_s, rtn = float("inf"), torch.ones_like(x_mean), None
    for i in range(grid):
        s = x_mean.pow(i / grid).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        wq = fake_int4(w * s, group_size) / s
        loss = (x @ wq.t() - ref).pow(2).mean().item()
        if i == 0:
            rtn = loss
        if loss < best:
            best, best_s = loss, s
    return best_s, best, rtn


@torch.inference_mode()
def awq_search(
    model: nn.Module, calib: list[list[int]], group_size: int, keep_tokens: int = 256, grid: int = 20
) -> dict:
    """Find and fold the scales in place (model in fp32). Returns a summary: mean output error before/after."""
    groups = []  # (linear, fold-into callback) per searchable layer group
    for layer in model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        groups.append((attn.qkv_proj, _fold_norm(layer.input_layernorm)))
        groups.append((mlp.gate_up_proj, _fold_norm(layer.post_attention_layernorm)))
        groups.append((mlp.down_proj, _fold_up(mlp.gate_up_proj)))
        # v -> o is foldable only without grouped-query attention (each o input has its own v row).
        if attn.h == attn.hkv:
            groups.append((attn.o_proj, _fold_v(attn.qkv_proj)))
    captures = [_Capture(keep_tokens) for _ in groups]
    hooks = [lin.register_forward_hook(c) for (lin, _), c in zip(groups, captures, strict=True)]
    try:
        for ids in track(calib, "calibrating"):
            prefill_hidden(model, ids)
    finally:
        for h in hooks:
            h.remove()
    before = after = 0.0
    for (lin, fold), cap in track(list(zip(groups, captures, strict=True)), "searching AWQ scales"):
        s, loss, rtn = search_scale(lin.weight, cap.x(), cap.mean(), group_size, grid)
        lin.weight.mul_(s.to(lin.weight.dtype))
        fold(s)
        before, after = before + rtn, after + loss
    return {
        "groups": len(groups),
        "rtn_output_mse": before / len(groups),
        "awq_output_mse": after / len(groups),
    }


def _fold_norm(norm: nn.Module):
    def fold(s: torch.Tensor) -> None:
        norm.weight.div_(s.to(norm.weight.dtype))

    return fold


def _fold_up(gate_up: nn.Linear):
    def fold(s: torch.Tensor) -> None:
        half = gate_up.weight.shape[0] // 2  # rows [half:] are up; down's input is silu(gate) * up
        gate_up.weight[half:].div_(s[:, None].to(gate_up.weight.dtype))

    return fold


def _fold_v(qkv: nn.Linear):
    def fold(s: torch.Tensor) -> None:
        n = s.shape[0]
        start = qkv.weight.shape[0] - n
        qkv.weight[start:].div_(s[:, None].to(qkv.weight.dtype))
        if qkv.bias is not None:
            qkv.bias[start:].div_(s.to(qkv.bias.dtype))

    return fold
