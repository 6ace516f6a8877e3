"""The memory planner: weights, KV cache, runtime reserve and parallel layout of one model on one cluster,
with a verdict, its reasons, a decode-speed bound from memory bandwidth, and every step of the arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field

from r1stack.deploy.hardware import GB, Cluster, parse_hardware
from r1stack.deploy.models import ModelArch, dtype_bytes, resolve_model
from r1stack.deploy.parallel import Layout, candidate_layouts
from r1stack.deploy.quant import WeightSize, activation_dtype, normalize_scheme, weight_size
from r1stack.errors import UserError

GPU_RUNTIME_BYTES = 1 * GB  # CUDA context, cuBLAS and NCCL workspaces per GPU
CPU_RUNTIME_BYTES = int(0.5 * GB)  # Python, torch and the server process
DEFAULT_GPU_UTIL = 0.90  # vLLM's default --gpu-memory-utilization
DEFAULT_CPU_UTIL = 0.75  # leave a quarter of RAM to the OS, page cache and other services
PREFILL_CHUNK = 2048  # tokens prefilled per step (chunked prefill) that size the activation peak

FITS, REDUCED, NO_FIT = "fits", "fits-reduced", "does-not-fit"


@dataclass(frozen=True)
class PlanRequest:
    model: str
    hardware: str
    nodes: int = 1
    context: int = 8192
    concurrency: int = 16
    quant: str | None = None  # None: the model's native format (fp8 for R1/V3, bf16 otherwise)
    memory_utilization: float | None = None


@dataclass
class Step:
    label: str
    formula: str
    value: str


@dataclass
class Plan:
    request: PlanRequest
    model: ModelArch
    cluster: Cluster
    quant: str
    kv_dtype: str
    context: int
    concurrency: int
    layout: Layout
    weights: WeightSize
    weights_per_device: int
    kv_bytes_per_token: int
    kv_bytes_per_token_per_device: int
    runtime_per_device: int
    activation_per_device: int
    usable_per_device: int
    kv_budget_per_device: int
    kv_tokens: int
    max_concurrency_at_context: int
    max_context_at_concurrency: int
    decode_tps_single: float
    decode_tps_aggregate: float
    verdict: str
    reasons: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.verdict != NO_FIT

    @property
    def weights_gb(self) -> float:
        return self.weights.total_bytes / GB


def default_quant(model: ModelArch) -> str:
    return "fp8" if model.native_quant == "fp8" else "bf16"


def plan(req: PlanRequest, cluster: Cluster | None = None) -> Plan:
    """Plan `req`; `cluster` overrides `req.hardware` (the doctor passes the machine it measured)."""
    model = resolve_model(req.model)
    cluster = cluster or parse_hardware(req.hardware, req.nodes)
    if req.context < 1 or req.concurrency < 1:
        raise UserError("--context and --concurrency must be at least 1")
    quant = normalize_scheme(req.quant or default_quant(model))
    util = req.memory_utilization or (DEFAULT_CPU_UTIL if cluster.is_cpu else DEFAULT_GPU_UTIL)
    if not 0.05 <= util <= 1.0:
        raise UserError(f"memory utilization must lie in (0.05, 1], got {util}")
    reasons: list[str] = []
    dev = cluster.device
    context = req.context
    if context > model.max_position:
        reasons.append(
            f"context {context:,} exceeds the model's max_position_embeddings {model.max_position:,}; "
            f"planned at {model.max_position:,}"
        )
        context = model.max_position
    blocked = _quant_blockers(quant, cluster, reasons)
    kv_dtype = "float32" if (quant == "fp32") else activation_dtype(quant, dev.bf16)
    weights = weight_size(model, quant)
    kv_token = model.kv_bytes_per_token(kv_dtype)
    usable = int(dev.memory_bytes * util)
    runtime = CPU_RUNTIME_BYTES if cluster.is_cpu else GPU_RUNTIME_BYTES

    evaluated = [
        _evaluate(model, cluster, lay, weights, kv_dtype, usable, runtime, context, req.concurrency)
        for lay in candidate_layouts(model, cluster)
    ]
    if not evaluated:
        raise UserError(
            f"no tensor-parallel degree up to {cluster.per_node} divides {model.name}'s "
            f"{model.num_heads} attention heads; use a GPU count that does"
        )
    full = [e for e in evaluated if e["kv_tokens"] >= context * req.concurrency]
    partial = [e for e in evaluated if e["kv_tokens"] >= min(context, 16)]
    if full and not blocked:
        best, verdict = full[0], FITS
    elif partial and not blocked:
        best, verdict = max(partial, key=lambda e: e["kv_tokens"]), REDUCED
    else:
        best, verdict = evaluated[-1], NO_FIT
    lay: Layout = best["layout"]
    kv_tokens = max(best["kv_tokens"], 0)
    max_conc = kv_tokens // context if context else 0
    max_ctx = min(model.max_position, kv_tokens // req.concurrency)

    total_usable = usable * cluster.total_devices
    if weights.total_bytes + runtime * cluster.total_devices > total_usable:
        reasons.append(
            f"weights {weights.total_bytes / GB:,.1f} GB in {quant} exceed the "
            f"{total_usable / GB:,.0f} GB usable on {cluster.describe()} "
            f"({dev.memory_gb * cluster.total_devices:,.0f} GB total, {util:.0%} usable)"
        )
    elif verdict == NO_FIT and not blocked:
        reasons.append(
            f"weights {best['weights_per_device'] / GB:,.1f} GB per device plus {best['reserve'] / GB:.1f} GB "
            f"runtime and activations leave no room for KV cache in {usable / GB:,.1f} GB usable per device"
        )
    if verdict == REDUCED:
        reasons.append(
            f"KV cache holds {kv_tokens:,} tokens, less than context x concurrency = "
            f"{context:,} x {req.concurrency} = {context * req.concurrency:,}: at {context:,} tokens "
            f"{max_conc} sequences fit; at {req.concurrency} sequences each gets {max_ctx:,} tokens"
        )
    if verdict == FITS:
        reasons.append(
            f"{lay.describe()} holds {best['weights_per_device'] / GB:,.1f} GB weights per device and KV for "
            f"{kv_tokens:,} tokens >= {context:,} x {req.concurrency}"
        )
    reasons.extend(lay.notes)
    if model.mtp_layers:
        mtp = model.published.get("mtp_params")
        size = f" ({mtp / 1e9:.0f}B params)" if mtp else ""
        reasons.append(
            f"not counted: the multi-token-prediction module{size}, which vLLM loads only for "
            "speculative decoding"
        )

    single, aggregate = _decode_bounds(
        model,
        cluster,
        lay,
        weights,
        best["kv_dev_all_layers"],
        context,
        max(1, min(req.concurrency, max_conc or 1)),
    )
    p = Plan(
        request=req,
        model=model,
        cluster=cluster,
        quant=quant,
        kv_dtype=kv_dtype,
        context=context,
        concurrency=req.concurrency,
        layout=lay,
        weights=weights,
        weights_per_device=best["weights_per_device"],
        kv_bytes_per_token=kv_token,
        kv_bytes_per_token_per_device=best["kv_dev"],
        runtime_per_device=runtime,
        activation_per_device=best["activation"],
        usable_per_device=usable,
        kv_budget_per_device=max(best["kv_budget"], 0),
        kv_tokens=kv_tokens,
        max_concurrency_at_context=max_conc,
        max_context_at_concurrency=max_ctx,
        decode_tps_single=single,
        decode_tps_aggregate=aggregate,
        verdict=verdict,
        reasons=reasons,
    )
    p.steps = _steps(p, util)
    return p


def _quant_blockers(quant: str, cluster: Cluster, reasons: list[str]) -> bool:
    dev = cluster.device
    if cluster.is_cpu and quant == "fp8":
        reasons.append("fp8 weights need an FP8-capable GPU; on CPU use bf16, int8, int4 or gguf-q4_k_m")
        return True
    if cluster.is_cpu and cluster.nodes > 1:
        reasons.append("the native engine runs one CPU process; several CPU servers cannot share one model")
        return True
    if quant == "fp8" and not dev.fp8:
        reasons.append(
            f"{dev.id} has no FP8 tensor cores: vLLM runs the FP8 checkpoint weight-only (Marlin kernels, "
            "16-bit compute), so memory is as planned but compute is not FP8"
        )
    if quant == "awq" and cluster.is_cpu:
        reasons.append(
            "AWQ kernels are GPU kernels; on CPU the native engine dequantizes AWQ weights at load"
        )
    return False


def _evaluate(model, cluster, lay, weights, kv_dtype, usable, runtime, context, concurrency) -> dict:
    n = lay.tp * lay.pp
    w_dev = weights.total_bytes // n
    kv_dev_all = _kv_per_device(model, lay.tp, kv_dtype)
    kv_dev = -(-kv_dev_all // lay.pp)  # layers split across pipeline stages
    act = _activation_bytes(model, lay.tp, kv_dtype, min(PREFILL_CHUNK, context), concurrency)
    budget = usable - w_dev - runtime - act
    tokens = budget // kv_dev if kv_dev else 0
    return {
        "layout": lay,
        "weights_per_device": w_dev,
        "kv_dev": kv_dev,
        "kv_dev_all_layers": kv_dev_all,
        "activation": act,
        "reserve": runtime + act,
        "kv_budget": budget,
        "kv_tokens": int(tokens),
    }


def _kv_per_device(model: ModelArch, tp: int, kv_dtype: str) -> int:
    """MLA's latent is replicated on every TP rank; GQA splits KV heads (one head each when TP > kv_heads)."""
    if model.is_mla:
        return model.kv_bytes_per_token(kv_dtype)
    heads = max(1, model.num_kv_heads // tp)
    return 2 * model.num_layers * heads * model.head_dim * dtype_bytes(kv_dtype)


def _activation_bytes(model: ModelArch, tp: int, dtype: str, chunk: int, concurrency: int) -> int:
    b = dtype_bytes(dtype)
    inter = model.intermediate_size
    if model.is_moe:
        inter = max(inter, (model.experts_per_token + model.n_shared_experts) * model.moe_intermediate_size)
    attn = (model.num_heads + 2 * model.num_kv_heads) * max(model.head_dim, model.qk_nope_head_dim)
    per_token = (4 * model.hidden_size + (2 * inter + attn) // tp) * b
    logits = concurrency * model.vocab_size * 4  # fp32 logits of the rows being sampled
    return chunk * per_token + logits


def _decode_bounds(model, cluster, lay, weights, kv_dev_all, context, batch) -> tuple[float, float]:
    bw = cluster.device.bandwidth_gbs * GB
    total = model.param_count()
    active_fraction = model.param_count(active=True) / total
    w_active = weights.total_bytes * active_fraction
    single = bw / (w_active / lay.tp + kv_dev_all * context)
    if model.is_moe:
        n, k = model.n_routed_experts, model.experts_per_token
        touched = n * (1 - (1 - k / n) ** batch)  # expected distinct experts a batch wakes per MoE layer
        routed_all = model.num_moe_layers * n * model.expert_params()
        frac_touched = (total - routed_all * (1 - touched / n)) / total
        w_batch = weights.total_bytes * frac_touched
    else:
        w_batch = weights.total_bytes
    step = (w_batch / lay.tp + batch * kv_dev_all * context / 2) / bw
    aggregate = batch / step * lay.pp  # pipeline stages overlap when enough sequences are in flight
    return single, aggregate


def _steps(p: Plan, util: float) -> list[Step]:
    m, dev = p.model, p.cluster.device
    kvb = dtype_bytes(p.kv_dtype)
    s = [
        Step(
            "parameters",
            f"{m.name}: total (main model){', active per token' if m.is_moe else ''}",
            f"{m.param_count():,}" + (f" / {m.param_count(active=True):,}" if m.is_moe else ""),
        ),
        Step(f"weights ({p.quant})", p.weights.formula, f"{p.weights.total_bytes / GB:,.2f} GB"),
        Step("KV bytes per token", m.kv_formula(p.kv_dtype), f"{p.kv_bytes_per_token:,} B"),
        Step("layout", p.layout.describe(), f"{p.layout.tp * p.layout.pp} device(s) per replica"),
        Step(
            "weights per device",
            f"{p.weights.total_bytes:,} B / (TP {p.layout.tp} x PP {p.layout.pp})",
            f"{p.weights_per_device / GB:,.2f} GB",
        ),
        Step(
            "KV per token per device",
            (
                "MLA latent replicated on each TP rank"
                if m.is_mla
                else f"kv heads per rank = max(1, {m.num_kv_heads} // {p.layout.tp})"
            )
            + f", / PP {p.layout.pp}, x {kvb} B",
            f"{p.kv_bytes_per_token_per_device:,} B",
        ),
        Step(
            "usable per device",
            f"{dev.memory_gb:,.0f} GB x {util:.2f}",
            f"{p.usable_per_device / GB:,.2f} GB",
        ),
        Step(
            "runtime reserve",
            "CUDA context + cuBLAS/NCCL workspaces" if not p.cluster.is_cpu else "process",
            f"{p.runtime_per_device / GB:,.2f} GB",
        ),
        Step(
            "activation peak",
            f"{PREFILL_CHUNK}-token prefill chunk x (4H + (2I + qkv)/TP) x {kvb} B + "
            f"{p.concurrency} x vocab {m.vocab_size:,} x 4 B logits",
            f"{p.activation_per_device / GB:,.2f} GB",
        ),
        Step(
            "KV budget per device",
            "usable - weights - runtime - activations",
            f"{p.kv_budget_per_device / GB:,.2f} GB",
        ),
        Step("KV tokens that fit", "KV budget / KV per token per device", f"{p.kv_tokens:,} tokens"),
        Step(
            "largest context x concurrency",
            f"{p.kv_tokens:,} // context {p.context:,}; {p.kv_tokens:,} // concurrency {p.concurrency}",
            f"{p.max_concurrency_at_context} seqs at {p.context:,}; {p.max_context_at_concurrency:,} tokens at "
            f"{p.concurrency} seqs",
        ),
        Step(
            "decode bound, one stream",
            f"{dev.bandwidth_gbs:,.0f} GB/s / (active weights / TP + KV of {p.context:,} tokens)",
            f"{p.decode_tps_single:,.1f} tokens/s",
        ),
        Step(
            "decode bound, batch",
            "batch / ((weights touched / TP + batch x KV of context/2) / bandwidth) x PP",
            f"{p.decode_tps_aggregate:,.1f} tokens/s",
        ),
    ]
    return s


def alternatives(req: PlanRequest, per_kind: int = 2) -> list[Plan]:
    """Plans that would fit when `req` does not: smaller weight formats on the same hardware, and the model's
    native format (or the asked one, if smaller) on more nodes."""
    base = plan(req)
    if base.verdict != NO_FIT:
        return []

    def variant(quant: str, nodes: int) -> PlanRequest:
        return PlanRequest(
            req.model, req.hardware, nodes, req.context, req.concurrency, quant, req.memory_utilization
        )

    smaller = [
        variant(q, req.nodes)
        for q in ("fp8", "int8", "awq", "int4", "gguf-q4_k_m")
        if q != base.quant and weight_size(base.model, q).total_bytes < base.weights.total_bytes
    ]
    native = default_quant(base.model)
    quant = native if weight_size(base.model, native).total_bytes < base.weights.total_bytes else base.quant
    bigger = [] if base.cluster.is_cpu else [variant(quant, req.nodes * k) for k in (2, 4, 8)]
    found: list[Plan] = []
    for group in (smaller, bigger):
        fits = (p for p in map(plan, group) if p.verdict != NO_FIT)
        found += [p for _, p in zip(range(per_kind), fits, strict=False)]
    return found
