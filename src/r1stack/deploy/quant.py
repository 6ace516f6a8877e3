"""Weight-storage schemes and what a model's weights weigh under each, scale and zero-point overheads included."""

from __future__ import annotations

from dataclasses import dataclass

from r1stack.deploy.models import ModelArch
from r1stack.errors import UserError

# Block/group geometry of each scheme, and why it costs what it costs per weight:
#  fp8   DeepSeek's checkpoint format: e4m3 weights + one fp32 scale per 128x128 block (4 B / 16384 weights)
#  int8  weight-only, one bf16 scale per output row (2 B / in_features weights)
#  int4  weight-only (gpt-fast style), groups of 128 with a bf16 scale and a bf16 zero (4 B / 128 weights)
#  awq   4-bit, groups of 128 with an fp16 scale and a packed 4-bit zero (2.5 B / 128 weights)
#  gguf-q4_k_m  llama.cpp: Q4_K = 4.5 bits/weight, Q6_K = 6.5625 bits/weight; Q4_K_M stores the output head
#        and the V and FFN-down projections of about half the layers in Q6_K, everything else in Q4_K, norms F32
SCHEMES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "awq", "gguf-q4_k_m")
Q4_K_BPW = 4.5
Q6_K_BPW = 6.5625


@dataclass(frozen=True)
class WeightSize:
    scheme: str
    total_bytes: int
    quantized_params: int
    kept_params: int  # stored at 16 bits (or F32 norms in GGUF)
    bytes_per_quantized_param: float
    formula: str

    @property
    def bytes_per_param(self) -> float:
        return self.total_bytes / max(self.quantized_params + self.kept_params, 1)


def normalize_scheme(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    aliases = {
        "bfloat16": "bf16",
        "float16": "fp16",
        "float32": "fp32",
        "q4-k-m": "gguf-q4_k_m",
        "gguf": "gguf-q4_k_m",
    }
    key = aliases.get(key, key).replace("gguf-q4-k-m", "gguf-q4_k_m")
    if key not in SCHEMES:
        raise UserError(f"unknown quantization {name!r}; use one of {', '.join(SCHEMES)}")
    return key


def weight_size(arch: ModelArch, scheme: str) -> WeightSize:
    scheme = normalize_scheme(scheme)
    total = arch.param_count()
    kept = arch.sixteen_bit_params()
    quantized = total - kept
    h = arch.hidden_size
    if scheme in ("fp32", "bf16", "fp16"):
        b = 4 if scheme == "fp32" else 2
        return WeightSize(scheme, total * b, 0, total, float(b), f"{total:,} params x {b} B")
    if scheme == "gguf-q4_k_m":
        return _gguf_q4_k_m(arch)
    per = {
        "fp8": 1 + 4 / (128 * 128),
        "int8": 1 + 2 / h,
        "int4": 0.5 + 4 / 128,
        "awq": 0.5 + 2.5 / 128,
    }[scheme]
    size = int(quantized * per + kept * 2)
    formula = f"{quantized:,} quantized params x {per:.5f} B + {kept:,} 16-bit params (embeddings, norms, routers) x 2 B"
    return WeightSize(scheme, size, quantized, kept, per, formula)


def _gguf_q4_k_m(arch: ModelArch) -> WeightSize:
    h = arch.hidden_size
    norms = arch.sixteen_bit_params() - arch.embedding_params()  # norms and routers, kept F32 in GGUF
    total = arch.param_count()
    if arch.is_mla:
        v_like = arch.num_layers * arch.kv_lora_rank * arch.num_heads * arch.v_head_dim
    else:
        v_like = arch.num_layers * h * arch.num_kv_heads * arch.head_dim
    down = 0
    for i in range(arch.num_layers):
        if arch.is_moe_layer(i):
            down += (arch.n_routed_experts + arch.n_shared_experts) * h * arch.moe_intermediate_size
        else:
            down += h * arch.intermediate_size
    # A tied head is the embedding itself, stored once in Q4_K.
    head = 0 if arch.tie_embeddings else arch.vocab_size * h
    q6 = head + (v_like + down) // 2
    q4 = total - q6 - norms
    size = int(q4 * Q4_K_BPW / 8 + q6 * Q6_K_BPW / 8 + norms * 4)
    formula = (
        f"{q4:,} params in Q4_K x {Q4_K_BPW}/8 B + {q6:,} in Q6_K (output head, half of V and FFN-down) "
        f"x {Q6_K_BPW}/8 B + {norms:,} F32 norms/routers x 4 B"
    )
    return WeightSize("gguf-q4_k_m", size, q4 + q6, norms, size / max(total, 1), formula)


def native_engine_quantization(scheme: str) -> str | None:
    """The `r1stack serve --quantization` value for a scheme, or None when the native engine has none."""
    return {
        "fp32": "none",
        "bf16": "none",
        "fp16": "none",
        "int8": "int8",
        "int4": "int4",
        "awq": "awq",
        "gguf-q4_k_m": "gguf",
    }.get(normalize_scheme(scheme))


def activation_dtype(scheme: str, device_bf16: bool = True) -> str:
    """The dtype compute and KV cache run in: 16-bit for every scheme except plain fp32."""
    scheme = normalize_scheme(scheme)
    if scheme == "fp32":
        return "float32"
    if scheme == "fp16":
        return "float16"
    return "bfloat16" if device_bf16 else "float16"
