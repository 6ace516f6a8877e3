"""DeepSeek-V3's mixture of experts: a sigmoid router with group-limited top-k and a score-correction bias, routed
experts run token groups at a time (tokens sorted by expert, one matmul pair per active expert), shared experts,
and per-expert load counters that operators read to see routing imbalance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1stack.engine.config import MoEConfig
from r1stack.engine.fp8 import FP8_DTYPE, dequantize_blocks


class MLP(nn.Module):
    """SwiGLU feed-forward under the checkpoint's own names (dense layers and shared experts)."""

    def __init__(self, hidden: int, inter: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    """Kept in float32 whatever the model's dtype, as the reference keeps it: routing flips on rounding."""

    def __init__(self, hidden: int, m: MoEConfig):
        super().__init__()
        self.m = m
        self.weight = nn.Parameter(torch.zeros(m.n_routed_experts, hidden), requires_grad=False)
        self.e_score_correction_bias = nn.Parameter(torch.zeros(m.n_routed_experts), requires_grad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [T, hidden] -> (weights [T, k] float32, expert ids [T, k])."""
        m, e = self.m, self.m.n_routed_experts
        scores = F.linear(x.float(), self.weight.float()).sigmoid()
        # The bias steers which experts are chosen (load balancing) but not how much they weigh.
        choice = scores + self.e_score_correction_bias.float()
        groups = choice.view(-1, m.n_group, e // m.n_group).topk(2, dim=-1)[0].sum(dim=-1)
        keep = torch.zeros_like(groups).scatter_(1, groups.topk(m.topk_group, dim=-1, sorted=False)[1], 1.0)
        keep = keep.unsqueeze(-1).expand(-1, m.n_group, e // m.n_group).reshape(-1, e).bool()
        ids = choice.masked_fill(~keep, float("-inf")).topk(m.num_experts_per_tok, dim=-1, sorted=False)[1]
        weights = scores.gather(1, ids)
        if m.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * m.routed_scaling_factor, ids


class MoE(nn.Module):
    def __init__(self, hidden: int, m: MoEConfig):
        super().__init__()
        self.m = m
        e, inter = m.n_routed_experts, m.moe_intermediate_size
        self.gate = Router(hidden, m)
        # Experts stacked so that one weight tensor serves every group: [E, 2I, H] (gate then up) and [E, H, I].
        self.w13 = nn.Parameter(torch.empty(e, 2 * inter, hidden), requires_grad=False)
        self.w2 = nn.Parameter(torch.empty(e, hidden, inter), requires_grad=False)
        self.shared_experts = MLP(hidden, inter * m.n_shared_experts) if m.n_shared_experts else None
        self.first_expert = 0  # expert parallelism: this rank holds experts first_expert .. + len(w13)
        self.register_buffer(
            "load", torch.zeros(e, dtype=torch.long), persistent=False
        )  # tokens routed, ever
        self.last_load = torch.zeros(e, dtype=torch.long)  # tokens routed in the latest forward
        self.block: tuple[int, int] | None = None  # set when the experts are kept as FP8 blocks

    def keep_fp8(self, block: tuple[int, int]) -> None:
        """Hold the experts as FP8 with their block scales (most of R1's weights are experts). Gate and up are
        blocked separately in the checkpoint, so w13's scales keep one row range per half."""
        e, two_i, h = self.w13.shape
        inter, (bn, bk) = two_i // 2, block
        dev = self.w13.device
        self.w13 = nn.Parameter(torch.empty(e, two_i, h, dtype=FP8_DTYPE, device=dev), requires_grad=False)
        self.w2 = nn.Parameter(torch.empty(e, h, inter, dtype=FP8_DTYPE, device=dev), requires_grad=False)
        self.w13_scale_inv = torch.empty(e, 2 * -(-inter // bn), -(-h // bk), device=dev)
        self.w2_scale_inv = torch.empty(e, -(-h // bn), -(-inter // bk), device=dev)
        self.block = block

    def _weights(self, local: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(w13, w2) of one local expert in the compute dtype."""
        if self.block is None:
            return self.w13[local], self.w2[local]
        inter = self.w2.shape[2]
        half = self.w13_scale_inv.shape[1] // 2
        w13, s13 = self.w13[local], self.w13_scale_inv[local]
        gate = dequantize_blocks(w13[:inter], s13[:half], self.block, dtype)
        up = dequantize_blocks(w13[inter:], s13[half:], self.block, dtype)
        w2 = dequantize_blocks(self.w2[local], self.w2_scale_inv[local], self.block, dtype)
        return torch.cat((gate, up)), w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, ids = self.gate(x)
        k = ids.shape[1]
        flat = ids.flatten()
        order = flat.argsort(stable=True)  # rows grouped by expert, in token order within a group
        counts = torch.bincount(flat, minlength=self.m.n_routed_experts)
        self.load += counts
        self.last_load = counts
        tokens = order // k
        xs, ws = x[tokens], weights.flatten()[order]
        ys = torch.empty_like(xs)
        start = 0
        for expert, n in enumerate(counts.tolist()):
            seg, start = slice(start, start + n), start + n
            local = expert - self.first_expert
            if n == 0:
                continue
            if not 0 <= local < self.w13.shape[0]:
                ys[seg] = 0  # another rank's expert: its contribution arrives through the all-reduce
                continue
            w13, w2 = self._weights(local, xs.dtype)
            gate, up = F.linear(xs[seg], w13).chunk(2, dim=-1)
            ys[seg] = (F.linear(F.silu(gate) * up, w2) * ws[seg, None]).to(ys.dtype)
        out = torch.zeros_like(x).index_add_(0, tokens, ys)
        if self.shared_experts is not None:
            out = out + self.shared_experts(x)
        return out
