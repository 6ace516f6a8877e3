"""Launch plans written as files, each one parsed before it is handed over."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from r1stack.deploy.launch import gateway, multinode, services
from r1stack.deploy.launch.checks import (
    LaunchCheckError,
    check_compose,
    check_kubernetes,
    check_shell,
    load_yaml,
)
from r1stack.deploy.launch.commands import Command, native_command, vllm_command
from r1stack.deploy.planner import NO_FIT, Plan

__all__ = ["LaunchFile", "LaunchCheckError", "write_launch_plans", "native_command", "vllm_command"]


@dataclass(frozen=True)
class LaunchFile:
    path: Path
    kind: str  # "shell" | "env" | "compose" | "kubernetes" | "json" | "text"
    check: str  # how it was checked


def write_launch_plans(p: Plan, out_dir: Path) -> list[LaunchFile]:
    """Write every launch file the plan supports into out_dir and check each; raise LaunchCheckError if one fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    native, vllm = native_command(p), vllm_command(p)
    files: list[LaunchFile] = [_write_json(out_dir / "plan.json", summary(p, native, vllm))]
    if native.argv:
        files.append(_write_shell(out_dir / "serve_native.sh", multinode.native_script(native)))
    if vllm.argv:
        gpus = p.layout.tp * p.layout.pp
        files.append(_write_shell(out_dir / "check_p2p.sh", multinode.p2p_check_script(p.cluster.per_node)))
        if p.cluster.nodes > 1:
            files.append(_write_shell(out_dir / "nccl.env", multinode.nccl_env(p), kind="env"))
            files.append(_write_shell(out_dir / "ray_head.sh", multinode.ray_head_script(p, vllm)))
            files.append(_write_shell(out_dir / "ray_worker.sh", multinode.ray_worker_script(p)))
        else:
            files.append(
                _write_shell(out_dir / "serve_vllm.sh", multinode.single_node_vllm_script(vllm, gpus))
            )
    if p.verdict != NO_FIT and p.cluster.nodes == 1 and (native.argv or vllm.argv):
        compose_path = out_dir / "docker-compose.yaml"
        compose_path.write_text(services.compose(p, native, vllm), encoding="utf-8")
        docs = load_yaml(compose_path)
        check_compose(docs[0])
        files.append(LaunchFile(compose_path, "compose", "yaml.safe_load + services/volumes cross-check"))
        k8s_path = out_dir / "kubernetes.yaml"
        k8s_path.write_text(services.kubernetes(p, native, vllm), encoding="utf-8")
        check_kubernetes(load_yaml(k8s_path))
        files.append(LaunchFile(k8s_path, "kubernetes", "yaml.safe_load_all + selector/label cross-check"))
    if p.verdict != NO_FIT and p.cluster.nodes > 1 and vllm.argv:
        files += _write_gateway_manifests(p, vllm, out_dir)
    readme = out_dir / "README.txt"
    readme.write_text(_readme(p, native, vllm, files), encoding="utf-8")
    files.append(LaunchFile(readme, "text", "none (prose)"))
    return files


def _write_gateway_manifests(p: Plan, vllm: Command, out_dir: Path) -> list[LaunchFile]:
    """Multi-node: the r1stack gateway in front of the plan's replicas, served by vLLM or by SGLang."""
    files = []
    for engine in gateway.ENGINES:
        if p.layout.pp == 1:  # a replica spanning nodes cannot be one compose service
            path = out_dir / f"gateway-{engine}-compose.yaml"
            path.write_text(gateway.compose(p, vllm, engine), encoding="utf-8")
            gateway.check_gateway_compose(load_yaml(path)[0])
            files.append(
                LaunchFile(path, "compose", "yaml.safe_load + gateway upstreams/proxy/Milvus wiring")
            )
        path = out_dir / f"gateway-{engine}-kubernetes.yaml"
        path.write_text(gateway.kubernetes(p, vllm, engine), encoding="utf-8")
        docs = load_yaml(path)
        check_kubernetes(docs)
        gateway.check_gateway_kubernetes(docs)
        files.append(LaunchFile(path, "kubernetes", "yaml.safe_load_all + gateway upstreams = replica pods"))
    return files


def _write_shell(path: Path, text: str, kind: str = "shell") -> LaunchFile:
    path.write_text(text, encoding="utf-8")
    if kind == "shell":
        os.chmod(path, 0o755)
    check_shell(path)
    return LaunchFile(path, kind, "bash -n")


def _write_json(path: Path, data: dict) -> LaunchFile:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    json.loads(path.read_text(encoding="utf-8"))
    return LaunchFile(path, "json", "json.loads")


def summary(p: Plan, native: Command, vllm: Command) -> dict:
    return {
        "model": p.model.name,
        "hardware": p.cluster.describe(),
        "quant": p.quant,
        "verdict": p.verdict,
        "reasons": p.reasons,
        "layout": {"tp": p.layout.tp, "pp": p.layout.pp, "ep": p.layout.ep, "replicas": p.layout.replicas},
        "weights_bytes": p.weights.total_bytes,
        "weights_per_device_bytes": p.weights_per_device,
        "kv_bytes_per_token": p.kv_bytes_per_token,
        "kv_dtype": p.kv_dtype,
        "kv_tokens": p.kv_tokens,
        "context": p.context,
        "concurrency": p.concurrency,
        "max_concurrency_at_context": p.max_concurrency_at_context,
        "max_context_at_concurrency": p.max_context_at_concurrency,
        "decode_tokens_per_s_bound": {
            "single": round(p.decode_tps_single, 1),
            "batch": round(p.decode_tps_aggregate, 1),
        },
        "native_command": native.line or None,
        "native_unavailable": native.why_not or None,
        "vllm_command": vllm.line or None,
        "vllm_unavailable": vllm.why_not or None,
        "notes": list(native.notes) + list(vllm.notes),
    }


def _readme(p: Plan, native: Command, vllm: Command, files: list[LaunchFile]) -> str:
    lines = [f"{p.model.name} on {p.cluster.describe()} ({p.quant}): {p.verdict}", ""]
    lines += [f"- {r}" for r in p.reasons]
    lines += ["", "Files:"]
    lines += [f"  {f.path.name:22s} checked by {f.check}" for f in files]
    if not native.argv:
        lines.append(f"  (no native plan: {native.why_not})")
    if not vllm.argv:
        lines.append(f"  (no vLLM plan: {vllm.why_not})")
    if p.cluster.nodes > 1:
        lines += [
            "",
            "Multi-node: copy this folder to every node; run ray_worker.sh HEAD_IP on nodes 1..N-1,",
            "then ray_head.sh on node 0. The gateway-*.yaml files run the same model as N replicas",
            "(vLLM or SGLang) behind `r1stack serve --upstream ...`, with the search proxy and Milvus;",
            "replicas that span nodes use a LeaderWorkerSet (install the LWS controller first).",
        ]
    if p.cluster.device.vendor == "amd":
        lines += [
            "",
            "AMD GPUs: check_p2p.sh and the compose/Kubernetes GPU requests are written for NVIDIA;",
            "on MI300X check links with `rocm-smi --showtopo`, use the vllm/vllm-openai ROCm image and",
            "request amd.com/gpu (Kubernetes) or map /dev/kfd and /dev/dri (compose).",
        ]
    for n in list(native.notes) + list(vllm.notes):
        lines.append(f"note: {n}")
    return "\n".join(lines) + "\n"
