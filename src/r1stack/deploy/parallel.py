"""Parallel layouts that respect the architecture: tensor parallel within a node dividing the attention heads,
pipeline parallel across nodes, expert parallel over the same ranks for MoE, replicas for what is left."""

from __future__ import annotations

from dataclasses import dataclass, field

from r1stack.deploy.hardware import Cluster
from r1stack.deploy.models import ModelArch


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    ep: int
    replicas: int
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        parts = [f"TP {self.tp}", f"PP {self.pp}"]
        if self.ep > 1:
            parts.append(f"EP {self.ep}")
        if self.replicas > 1:
            parts.append(f"{self.replicas} replicas")
        return " x ".join(parts)


def valid_tp(model: ModelArch, tp: int) -> bool:
    """vLLM splits attention heads across TP ranks; GQA KV heads split, or replicate when TP exceeds them."""
    if model.num_heads % tp:
        return False
    if model.is_mla:
        return True
    kv = model.num_kv_heads
    return kv % tp == 0 or tp % kv == 0


def candidate_layouts(model: ModelArch, cluster: Cluster) -> list[Layout]:
    """Layouts in the order the planner tries them: fewest devices first."""
    if cluster.is_cpu:
        return [Layout(1, 1, 1, cluster.nodes, ("CPU: one process, no tensor or pipeline parallelism",))]
    g, n = cluster.per_node, cluster.nodes
    out: list[Layout] = []
    for tp in range(1, g + 1):
        if g % tp or not valid_tp(model, tp):
            continue
        out.append(_layout(model, tp, 1, g * n // tp, cluster))
    if n > 1 and valid_tp(model, g):
        for pp in range(2, n + 1):
            if n % pp == 0:
                out.append(_layout(model, g, pp, n // pp, cluster))
    return out


def _layout(model: ModelArch, tp: int, pp: int, replicas: int, cluster: Cluster) -> Layout:
    notes: list[str] = []
    ep = 1
    ranks = tp * pp
    if model.is_moe and ranks > 1:
        if model.n_routed_experts % ranks == 0:
            ep = ranks
            notes.append(
                f"expert parallel over {ep} ranks: {model.n_routed_experts // ep} of "
                f"{model.n_routed_experts} routed experts per GPU (vLLM --enable-expert-parallel)"
            )
        else:
            notes.append(
                f"{model.n_routed_experts} experts do not divide over {ranks} ranks: experts are TP-sharded"
            )
    if model.num_heads % tp == 0 and tp > 1 and not model.is_mla and tp > model.num_kv_heads:
        notes.append(
            f"TP {tp} > {model.num_kv_heads} KV heads: each KV head is replicated on {tp // model.num_kv_heads} GPUs"
        )
    if pp > 1:
        notes.append(
            f"pipeline over {pp} nodes ({model.num_layers} layers, ~{-(-model.num_layers // pp)} per stage); "
            f"inter-node link: {cluster.device.inter_node}"
        )
    if tp > 1 and "PCIe" in cluster.device.interconnect:
        notes.append(
            f"TP {tp} over {cluster.device.interconnect}: all-reduces cross PCIe, expect lower speed than NVLink"
        )
    return Layout(tp, pp, ep, replicas, tuple(notes))
