"""Tensor parallelism for DeepSeek-V3's attention and dense MLPs and expert parallelism for its MoE layers, over
torch.distributed (gloo on CPU, NCCL on GPU).

Every rank runs the same engine on the same requests (greedy and seeded sampling are deterministic, so the
schedules agree) and holds: its share of the attention heads (q_b/kv_b rows, o_proj columns), its slice of each
dense MLP, its share of the routed experts (all of a few, none of the rest) and a slice of the shared experts.
What stays whole on every rank: embeddings, norms, the router, lm_head, and the latent KV cache -- MLA's latent
is shared by all heads, so splitting heads does not split the cache. One all-reduce after each attention and each
MLP/MoE block sums the partial outputs.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import nn

from r1stack.engine.fp8 import Fp8Linear
from r1stack.engine.models.deepseek_v3 import DeepseekV3ForCausalLM
from r1stack.engine.models.mla import MLAttention
from r1stack.engine.models.moe import MLP, MoE
from r1stack.errors import UserError


def shard(model: DeepseekV3ForCausalLM, rank: int, world: int, group=None) -> None:
    """Cut a fully loaded model down, in place, to what `rank` of `world` keeps, and add the all-reduces."""
    cfg = model.cfg
    for what, n in (
        ("attention heads", cfg.num_heads),
        ("routed experts", cfg.moe.n_routed_experts),
        ("intermediate_size", cfg.intermediate_size),
        ("shared expert width", cfg.moe.moe_intermediate_size * cfg.moe.n_shared_experts),
    ):
        if n % world:
            raise UserError(
                f"{what} ({n}) do not split evenly over {world} ranks; use a world size dividing it"
            )
    for layer in model.layers:
        _shard_attention(layer.self_attn, rank, world)
        if isinstance(layer.mlp, MoE):
            _shard_moe(layer.mlp, rank, world)
        else:
            _shard_mlp(layer.mlp, rank, world)
        for block in (layer.self_attn, layer.mlp):
            block.register_forward_hook(_all_reduce_hook(group))


def _all_reduce_hook(group):
    def hook(module, inputs, output):
        dist.all_reduce(output, group=group)
        return output

    return hook


def _keep(linear: nn.Linear | Fp8Linear, dim: int, start: int, size: int, rank: int) -> None:
    if isinstance(linear, Fp8Linear):
        linear.narrow(dim, start, size)
    else:
        linear.weight = nn.Parameter(linear.weight.data.narrow(dim, start, size).clone(), requires_grad=False)
    if linear.bias is not None:
        bias = linear.bias.data.narrow(0, start, size).clone() if dim == 0 else linear.bias.data.clone()
        if dim == 1 and rank:  # a row-parallel layer's bias is added once, after the sum
            bias.zero_()
        linear.bias = nn.Parameter(bias, requires_grad=False)
    if dim == 0:
        linear.out_features = size
    else:
        linear.in_features = size


def _shard_attention(attn: MLAttention, rank: int, world: int) -> None:
    h = attn.h // world
    qk, kv = attn.nope + attn.rope_dim, attn.nope + attn.vd
    _keep(attn.q_proj if hasattr(attn, "q_proj") else attn.q_b_proj, 0, rank * h * qk, h * qk, rank)
    _keep(attn.kv_b_proj, 0, rank * h * kv, h * kv, rank)
    _keep(attn.o_proj, 1, rank * h * attn.vd, h * attn.vd, rank)
    attn.h = h


def _shard_mlp(mlp: MLP, rank: int, world: int) -> None:
    n = mlp.gate_proj.out_features // world
    _keep(mlp.gate_proj, 0, rank * n, n, rank)
    _keep(mlp.up_proj, 0, rank * n, n, rank)
    _keep(mlp.down_proj, 1, rank * n, n, rank)


def _shard_moe(moe: MoE, rank: int, world: int) -> None:
    n = moe.m.n_routed_experts // world
    moe.w13 = nn.Parameter(moe.w13.data[rank * n : (rank + 1) * n].clone(), requires_grad=False)
    moe.w2 = nn.Parameter(moe.w2.data[rank * n : (rank + 1) * n].clone(), requires_grad=False)
    if moe.block is not None:  # experts kept as FP8: their scales go with them
        moe.w13_scale_inv = moe.w13_scale_inv[rank * n : (rank + 1) * n].clone()
        moe.w2_scale_inv = moe.w2_scale_inv[rank * n : (rank + 1) * n].clone()
    moe.first_expert = rank * n
    if moe.shared_experts is not None:
        _shard_mlp(moe.shared_experts, rank, world)
