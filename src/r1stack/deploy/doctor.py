"""`r1stack doctor`: turn the machine's facts into the best model and settings for it, and say what rules
out every other option (too big, too slow, no kernels for that format)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from r1stack.deploy.hardware import Cluster, Device, cpu_device, gpu_profiles
from r1stack.deploy.launch.commands import Command, native_command, vllm_command
from r1stack.deploy.machine import MachineFacts
from r1stack.deploy.models import catalogue
from r1stack.deploy.planner import NO_FIT, Plan, PlanRequest, plan

# Formats tried per device kind, best quality first. Only formats a pulled checkpoint can be served in:
# 16/32-bit as published, or int8/int4 quantized at load (AWQ and GGUF need their own checkpoint files).
CPU_QUANTS_BF16 = ("bf16", "fp32", "int8", "int4")
CPU_QUANTS_FP32 = ("fp32", "bf16", "int8", "int4")
GPU_QUANTS = ("bf16", "fp8", "int8", "int4")
# Weight-only int8/int4 (round-to-nearest at load, `r1stack serve --quantization int8|int4`) are tried only
# when asked: they trade answer quality for size, a choice the doctor leaves to the user.
QUANTIZED = ("int8", "int4")


@dataclass
class Option:
    plan: Plan
    command: Command
    usable: bool
    why_not: str = ""


@dataclass
class Verdict:
    model: str
    params: int
    chosen: Option | None  # the best usable format of this model, if any
    why_not: str  # when no format is usable: the reason of the closest one


@dataclass
class DoctorReport:
    facts: MachineFacts
    cluster: Cluster
    context: int
    concurrency: int
    min_tokens_per_s: float
    verdicts: list[Verdict]
    best: Verdict | None
    best_installed: Verdict | None
    installed: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


def machine_cluster(facts: MachineFacts) -> Cluster:
    """The machine as a planner cluster: its GPUs (profile matched by name, memory as measured), else its RAM."""
    if facts.gpus:
        g = facts.gpus[0]
        profile = _match_gpu(g.name, g.memory_bytes)
        device = Device(
            id=profile.id if profile else re.sub(r"\s+", "-", g.name),
            name=g.name,
            kind="gpu",
            memory_bytes=g.memory_bytes,
            bandwidth_gbs=profile.bandwidth_gbs if profile else 0.0,
            bf16=profile.bf16 if profile else True,
            fp8=profile.fp8 if profile else False,
            fp8_weight_only=profile.fp8_weight_only if profile else False,
            interconnect=profile.interconnect if profile else "",
            inter_node=profile.inter_node if profile else "",
            vendor=profile.vendor if profile else "",
            source="measured by torch.cuda / nvidia-smi; bandwidth from the matching profile",
        )
        return Cluster(device, per_node=len(facts.gpus), nodes=1)
    name = f"{facts.cpu_model} ({facts.cores_logical} threads)"
    return Cluster(cpu_device(facts.ram_total, facts.cpu_bandwidth_gbs, name=name))


def _match_gpu(name: str, memory: int) -> Device | None:
    key = name.lower().replace("geforce", "").replace("nvidia", "").replace(" ", "")
    best = None
    for p in gpu_profiles().values():
        stem = p.id.split("-")[0].lower()
        if stem in key:
            # several memory sizes share a stem (A100 40/80): take the closest
            if best is None or abs(p.memory_bytes - memory) < abs(best.memory_bytes - memory):
                best = p
    return best


def diagnose(
    facts: MachineFacts,
    *,
    context: int = 4096,
    concurrency: int = 4,
    min_tokens_per_s: float = 5.0,
    installed: set[str] | None = None,
    quantized: bool = False,
) -> DoctorReport:
    cluster = machine_cluster(facts)
    installed = installed or set()
    if cluster.is_cpu:
        quants = CPU_QUANTS_BF16 if facts.has_bf16_cpu else CPU_QUANTS_FP32
    else:
        quants = GPU_QUANTS
    if not quantized:
        quants = tuple(q for q in quants if q not in QUANTIZED)
    verdicts = []
    for mid, arch in catalogue().items():
        options = [_option(mid, q, cluster, context, concurrency, min_tokens_per_s) for q in quants]
        usable = [o for o in options if o.usable]
        if usable:
            verdicts.append(Verdict(mid, arch.param_count(), usable[0], ""))
        else:
            verdicts.append(Verdict(mid, arch.param_count(), None, _closest_reason(options)))
    ok = [v for v in verdicts if v.chosen]
    best = max(ok, key=lambda v: v.params, default=None)
    ok_installed = [v for v in ok if v.model in installed]
    best_installed = max(ok_installed, key=lambda v: v.params, default=None)
    report = DoctorReport(
        facts, cluster, context, concurrency, min_tokens_per_s, verdicts, best, best_installed, installed
    )
    report.warnings = _warnings(facts, cluster)
    return report


def _option(
    model: str, quant: str, cluster: Cluster, context: int, concurrency: int, min_tps: float
) -> Option:
    p = plan(
        PlanRequest(
            model=model, hardware=cluster.device.id, quant=quant, context=context, concurrency=concurrency
        ),
        cluster=cluster,
    )
    single_device = p.layout.tp * p.layout.pp == 1
    cmd = native_command(p) if (cluster.is_cpu or single_device) else vllm_command(p)
    if not cmd.argv and not cluster.is_cpu and single_device:
        cmd = vllm_command(p)  # e.g. FP8 on one GPU: vLLM has the kernels the native engine lacks
    if p.verdict == NO_FIT:
        why = [r for r in p.reasons if "exceed" in r or "no room" in r or "FP8-capable" in r] or p.reasons
        return Option(p, cmd, False, "does not fit: " + (why[0] if why else "no memory left for KV"))
    if not cmd.argv:
        return Option(p, cmd, False, f"{quant}: {cmd.why_not}")
    if cluster.device.bandwidth_gbs and p.decode_tps_single < min_tps:
        return Option(
            p,
            cmd,
            False,
            f"too slow in {quant}: at most {p.decode_tps_single:.1f} tokens/s per stream "
            f"from {cluster.device.bandwidth_gbs:.0f} GB/s memory bandwidth "
            f"(< {min_tps:g} wanted)",
        )
    return Option(p, cmd, True)


def _closest_reason(options: list[Option]) -> str:
    # The format that came closest: fits but slow beats not fitting; otherwise the smallest one's reason.
    slow = [o for o in options if o.why_not.startswith("too slow")]
    if slow:
        return max(slow, key=lambda o: o.plan.decode_tps_single).why_not
    smallest = min(options, key=lambda o: o.plan.weights.total_bytes)
    return smallest.why_not


def _warnings(facts: MachineFacts, cluster: Cluster) -> list[str]:
    w = list(facts.problems)
    if not facts.data_dir_writable:
        w.append(
            f"data directory {facts.data_dir} is not writable ({facts.data_dir_error}); set R1STACK_DATA_DIR"
        )
    for port, free in facts.ports.items():
        if not free:
            w.append(f"port {port} is taken on 127.0.0.1: stop what holds it or pick another port")
    if facts.slow_gpu_pairs:
        w.append(
            "GPU pairs linked only through the CPU (slow tensor parallel): " + ", ".join(facts.slow_gpu_pairs)
        )
    if cluster.is_cpu and not facts.has_bf16_cpu:
        w.append("CPU has no AVX-512 BF16 or AMX: bfloat16 runs emulated; float32 or int8 are faster here")
    if facts.gpus and not facts.driver_version:
        w.append("GPU seen by torch but nvidia-smi gave no driver version")
    if len(facts.gpus) > 1 and "NCCL_SOCKET_IFNAME" not in facts.nccl_env:
        w.append("NCCL_SOCKET_IFNAME is unset: fine on one node, set it before a multi-node run")
    return w


def installed_models(models_dir: Path) -> set[str]:
    """Catalogue models pulled into the data directory (the store marks a finished pull with .complete)."""
    if not models_dir.is_dir():
        return set()
    return {p.name for p in models_dir.iterdir() if (p / ".complete").exists()}
