"""EngineArgs (what the user asks for) and ModelConfig (what the checkpoint is), the engine's two plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1stack.errors import UserError

SUPPORTED_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
}


@dataclass
class EngineArgs:
    model: str = "smollm2-135m-instruct"  # catalogue name or local path (HF directory or .gguf file)
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda
    max_model_len: int | None = None
    kv_cache_bytes: int | None = None  # absolute KV budget; wins over the fraction
    kv_cache_fraction: float = 0.3  # of free memory (CPU RAM or GPU memory) at start-up
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    block_size: int = 16
    enable_prefix_caching: bool = True
    quantization: str = "none"  # none | int8 | int4 | awq | gguf | fp8 (weight-only; see engine/quant)
    seed: int = 0
    threads: int | None = None  # CPU intra-op threads; None: torch's default (all cores)
    # True: never compile the decode step (vLLM's name for the switch); False: compile it (torch.compile, plus
    # CUDA graphs on CUDA); None: compile on CUDA, eager on CPU.
    enforce_eager: bool | None = None
    # False: PyTorch's ops only, without our C++ CPU kernels (attention, fused ops, VNNI matmuls). Process-wide:
    # the A/B switch for benchmarks and a way out should a kernel misbehave on some machine.
    cpu_kernels: bool = True
    data_dir: Path | None = None  # where catalogue models live; None: the settings' data_dir

    @classmethod
    def from_settings(cls, settings, **overrides) -> EngineArgs:
        e = settings.engine
        args = cls(
            model=settings.model,
            dtype=e.dtype,
            device=e.device,
            max_model_len=e.max_model_len,
            kv_cache_bytes=e.kv_cache_bytes,
            kv_cache_fraction=e.kv_cache_fraction,
            max_num_seqs=e.max_num_seqs,
            max_num_batched_tokens=e.max_num_batched_tokens,
            block_size=e.block_size,
            quantization=e.quantization,
            enforce_eager=e.enforce_eager,
            cpu_kernels=e.cpu_kernels,
            data_dir=settings.data_dir,
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(args, k, v)
        return args

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
        if self.device not in ("cpu", "cuda"):
            raise UserError(f"unknown device {self.device!r}; use cpu, cuda or auto")
        return torch.device(self.device)

    def resolve_dtype(self, device: torch.device) -> torch.dtype:
        names = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }
        if self.dtype == "auto":
            # bf16 halves memory traffic; on CPUs without native bf16 it is slower than fp32.
            if device.type == "cuda" or _cpu_has_bf16():
                return torch.bfloat16
            return torch.float32
        if self.dtype not in names:
            raise UserError(f"unknown dtype {self.dtype!r}; use float32, bfloat16, float16 or auto")
        return names[self.dtype]


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class MLAConfig:
    """Multi-head latent attention (DeepSeek-V2/V3): the cache holds kv_lora_rank + qk_rope_head_dim per token."""

    q_lora_rank: int | None  # None: a plain q_proj
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    rope_interleave: bool  # the published checkpoints store rope dims in interleaved pairs
    rope_scaling: dict = field(default_factory=dict)  # transformers' rope_parameters (YaRN for V3/R1)


@dataclass
class MoEConfig:
    """DeepSeek-V3 mixture of experts: sigmoid scores, group-limited top-k, shared experts."""

    n_routed_experts: int
    n_shared_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    n_group: int
    topk_group: int
    first_k_dense_replace: int
    routed_scaling_factor: float
    norm_topk_prob: bool


@dataclass
class ModelConfig:
    architecture: str  # "llama" | "qwen2" | "deepseek_v3"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool  # Qwen2: q/k/v carry a bias
    eos_token_ids: list[int] = field(default_factory=list)
    bos_token_id: int | None = None
    mla: MLAConfig | None = None
    moe: MoEConfig | None = None
    fp8_block: tuple[int, int] | None = (
        None  # FP8 checkpoints: the (rows, cols) of one weight_scale_inv block
    )

    @classmethod
    def from_hf(cls, hf) -> ModelConfig:
        """From a transformers PretrainedConfig (read from config.json or from GGUF metadata)."""
        model_type = getattr(hf, "model_type", None)
        if model_type not in SUPPORTED_ARCHITECTURES:
            supported = ", ".join(SUPPORTED_ARCHITECTURES.values())
            raise UserError(
                f"unsupported architecture {model_type!r} ({getattr(hf, 'architectures', None)}); "
                f"this engine runs {supported}"
            )
        rope = getattr(hf, "rope_parameters", None) or {}
        rope_theta = rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))
        heads = hf.num_attention_heads
        eos = hf.eos_token_id
        mla, moe = (_mla(hf, rope), _moe(hf)) if model_type == "deepseek_v3" else (None, None)
        return cls(
            architecture=model_type,
            vocab_size=hf.vocab_size,
            hidden_size=hf.hidden_size,
            intermediate_size=hf.intermediate_size,
            num_layers=hf.num_hidden_layers,
            num_heads=heads,
            num_kv_heads=getattr(hf, "num_key_value_heads", None) or heads,
            head_dim=(mla.qk_nope_head_dim + mla.qk_rope_head_dim)
            if mla
            else getattr(hf, "head_dim", None) or hf.hidden_size // heads,
            rms_norm_eps=hf.rms_norm_eps,
            rope_theta=float(rope_theta),
            max_position_embeddings=hf.max_position_embeddings,
            tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
            attention_bias=model_type == "qwen2" or bool(getattr(hf, "attention_bias", False)),
            eos_token_ids=[eos] if isinstance(eos, int) else list(eos or []),
            bos_token_id=getattr(hf, "bos_token_id", None),
            mla=mla,
            moe=moe,
            fp8_block=_fp8_block(hf),
        )

    def kv_bytes_per_token(self, dtype: torch.dtype) -> int:
        """What one token costs in the paged cache: K and V for every layer, or MLA's latent and rope key."""
        if self.mla is not None:
            return self.num_layers * (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim) * dtype.itemsize
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype.itemsize

    def mha_kv_bytes_per_token(self, dtype: torch.dtype) -> int:
        """What a standard multi-head cache of the same model would hold: every head's full K and V."""
        if self.mla is None:
            return self.kv_bytes_per_token(dtype)
        m = self.mla
        per_head = m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim
        return self.num_layers * self.num_heads * per_head * dtype.itemsize


def _mla(hf, rope: dict) -> MLAConfig:
    return MLAConfig(
        q_lora_rank=hf.q_lora_rank,
        kv_lora_rank=hf.kv_lora_rank,
        qk_nope_head_dim=hf.qk_nope_head_dim,
        qk_rope_head_dim=hf.qk_rope_head_dim,
        v_head_dim=hf.v_head_dim,
        rope_interleave=bool(getattr(hf, "rope_interleave", True)),
        rope_scaling=dict(rope),
    )


def _moe(hf) -> MoEConfig:
    return MoEConfig(
        n_routed_experts=hf.n_routed_experts,
        n_shared_experts=hf.n_shared_experts or 0,
        num_experts_per_tok=hf.num_experts_per_tok,
        moe_intermediate_size=hf.moe_intermediate_size,
        n_group=hf.n_group or 1,
        topk_group=hf.topk_group or 1,
        first_k_dense_replace=hf.first_k_dense_replace,
        routed_scaling_factor=float(hf.routed_scaling_factor),
        norm_topk_prob=bool(hf.norm_topk_prob),
    )


def _fp8_block(hf) -> tuple[int, int] | None:
    q = getattr(hf, "quantization_config", None) or {}
    if not isinstance(q, dict):
        q = q.to_dict()
    if q.get("quant_method") != "fp8":
        return None
    rows, cols = q.get("weight_block_size") or (128, 128)
    return int(rows), int(cols)
