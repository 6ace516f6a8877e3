"""EngineArgs (what the user asks for) and ModelConfig (what the checkpoint is), the engine's two plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1stack.errors import UserError

SUPPORTED_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


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
    seed: int = 0
    threads: int | None = None  # CPU intra-op threads; None: torch's default (all cores)
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
        names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                 "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
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
class ModelConfig:
    architecture: str  # "llama" | "qwen2"
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
        return cls(
            architecture=model_type,
            vocab_size=hf.vocab_size,
            hidden_size=hf.hidden_size,
            intermediate_size=hf.intermediate_size,
            num_layers=hf.num_hidden_layers,
            num_heads=heads,
            num_kv_heads=getattr(hf, "num_key_value_heads", None) or heads,
            head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // heads,
            rms_norm_eps=hf.rms_norm_eps,
            rope_theta=float(rope_theta),
            max_position_embeddings=hf.max_position_embeddings,
            tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
            attention_bias=model_type == "qwen2" or bool(getattr(hf, "attention_bias", False)),
            eos_token_ids=[eos] if isinstance(eos, int) else list(eos or []),
            bos_token_id=getattr(hf, "bos_token_id", None),
        )

    def kv_bytes_per_token(self, dtype: torch.dtype) -> int:
        """K and V for every layer: what one token costs in the paged cache."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype.itemsize
