"""Model architectures as the planner sees them: read from a config.json (the catalogue's or a local model's),
with parameter counts and KV-cache bytes per token computed from the architecture alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from r1stack.errors import UserError

DTYPE_BYTES = {
    "float32": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
}


@dataclass(frozen=True)
class ModelArch:
    """The architecture fields the planner needs; MLA and MoE fields are zero for dense GQA models."""

    name: str
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position: int
    tie_embeddings: bool
    attention_bias: bool
    # MLA (DeepSeek-V2/V3): the cache holds one latent of kv_lora_rank plus one rope key per token and layer.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # MoE
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    first_dense_layers: int = 0
    moe_layer_freq: int = 1
    mtp_layers: int = 0
    native_quant: str | None = None  # e.g. "fp8" for DeepSeek-R1's published checkpoint
    source: str = ""
    published: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    hf_repo: str = ""

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    def is_moe_layer(self, i: int) -> bool:
        return self.is_moe and i >= self.first_dense_layers and i % max(self.moe_layer_freq, 1) == 0

    @property
    def num_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any], name: str = "model") -> ModelArch:
        """Build from a Hugging Face config.json dict (Llama, Qwen2, DeepSeek-V3 and look-alikes)."""
        cfg = dict(cfg.get("text_config") or cfg) if "text_config" in cfg else cfg
        try:
            hidden = int(cfg["hidden_size"])
            heads = int(cfg["num_attention_heads"])
            layers = int(cfg["num_hidden_layers"])
            vocab = int(cfg["vocab_size"])
        except KeyError as e:
            raise UserError(
                f"config.json of {name!r} lacks {e.args[0]!r}; the planner needs hidden_size, "
                "num_attention_heads, num_hidden_layers and vocab_size"
            ) from None
        model_type = str(cfg.get("model_type", "unknown"))
        quant = cfg.get("quantization_config") or {}
        return cls(
            name=name,
            model_type=model_type,
            hidden_size=hidden,
            intermediate_size=int(cfg.get("intermediate_size") or 4 * hidden),
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab_size=vocab,
            max_position=int(cfg.get("max_position_embeddings") or 2048),
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            # Qwen2 has q/k/v biases without saying so in its config; Llama says attention_bias.
            attention_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
            q_lora_rank=int(cfg.get("q_lora_rank") or 0),
            kv_lora_rank=int(cfg.get("kv_lora_rank") or 0),
            qk_nope_head_dim=int(cfg.get("qk_nope_head_dim") or 0),
            qk_rope_head_dim=int(cfg.get("qk_rope_head_dim") or 0),
            v_head_dim=int(cfg.get("v_head_dim") or 0),
            n_routed_experts=int(cfg.get("n_routed_experts") or 0),
            n_shared_experts=int(cfg.get("n_shared_experts") or 0),
            experts_per_token=int(cfg.get("num_experts_per_tok") or 0),
            moe_intermediate_size=int(cfg.get("moe_intermediate_size") or 0),
            first_dense_layers=int(cfg.get("first_k_dense_replace") or 0),
            moe_layer_freq=int(cfg.get("moe_layer_freq") or 1),
            mtp_layers=int(cfg.get("num_nextn_predict_layers") or 0),
            native_quant=str(quant["quant_method"]) if quant.get("quant_method") else None,
        )

    # ---- parameter counts -------------------------------------------------------------------------------
    def attention_params(self) -> int:
        h = self.hidden_size
        if self.is_mla:
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.num_heads * qk_head
            else:
                q = h * self.num_heads * qk_head
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.num_heads * self.v_head_dim * h
            return q + kv_a + kv_b + o
        q_out = self.num_heads * self.head_dim
        kv_out = self.num_kv_heads * self.head_dim
        bias = (q_out + 2 * kv_out) if self.attention_bias else 0
        return h * q_out + 2 * h * kv_out + q_out * h + bias

    def dense_mlp_params(self) -> int:
        return 3 * self.hidden_size * self.intermediate_size  # gate, up, down (SwiGLU)

    def expert_params(self) -> int:
        return 3 * self.hidden_size * self.moe_intermediate_size

    def moe_layer_params(self, *, active: bool) -> int:
        routed = self.experts_per_token if active else self.n_routed_experts
        router = self.n_routed_experts * self.hidden_size + self.n_routed_experts  # gate weight + score bias
        return (routed + self.n_shared_experts) * self.expert_params() + router

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)

    def param_count(self, *, active: bool = False) -> int:
        """Parameters of the main model (DeepSeek's multi-token-prediction module excluded, as in '671B').

        active=True counts what one token touches: shared plus top-k routed experts instead of all experts.
        """
        norms = 2 * self.hidden_size
        total = self.embedding_params() + self.hidden_size  # final norm
        for i in range(self.num_layers):
            mlp = self.moe_layer_params(active=active) if self.is_moe_layer(i) else self.dense_mlp_params()
            total += self.attention_params() + mlp + norms
        return total

    def sixteen_bit_params(self) -> int:
        """Parameters that stay in 16 bits under weight quantization: embeddings, LM head, norms, routers."""
        norms = self.num_layers * 2 * self.hidden_size + self.hidden_size
        if self.is_mla:
            norms += self.num_layers * (self.kv_lora_rank + self.q_lora_rank)
        routers = self.num_moe_layers * (self.n_routed_experts * self.hidden_size + self.n_routed_experts)
        biases = 0
        if self.attention_bias and not self.is_mla:
            biases = self.num_layers * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        return self.embedding_params() + norms + routers + biases

    # ---- KV cache ---------------------------------------------------------------------------------------
    def kv_elements_per_token(self) -> int:
        """Cached numbers per token over all layers: GQA 2*L*kv_heads*head_dim; MLA L*(kv_lora_rank+rope)."""
        if self.is_mla:
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        return self.kv_elements_per_token() * dtype_bytes(dtype)

    def kv_formula(self, dtype: str = "bfloat16") -> str:
        b = dtype_bytes(dtype)
        if self.is_mla:
            return (
                f"MLA: layers x (kv_lora_rank + rope_dim) x bytes = {self.num_layers} x "
                f"({self.kv_lora_rank} + {self.qk_rope_head_dim}) x {b}"
            )
        return (
            f"GQA: 2 x layers x kv_heads x head_dim x bytes = 2 x {self.num_layers} x "
            f"{self.num_kv_heads} x {self.head_dim} x {b}"
        )


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise UserError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}") from None


@lru_cache(maxsize=1)
def _catalogue_raw() -> dict[str, dict[str, Any]]:
    text = resources.files("r1stack.deploy").joinpath("data/models.json").read_text(encoding="utf-8")
    return {m["id"]: m for m in json.loads(text)["models"]}


def catalogue() -> dict[str, ModelArch]:
    """Every catalogued model by id, in catalogue order."""
    return {mid: _from_entry(entry) for mid, entry in _catalogue_raw().items()}


def catalogue_entry(model_id: str) -> dict[str, Any]:
    return _catalogue_raw()[model_id]


def _from_entry(entry: dict[str, Any]) -> ModelArch:
    arch = ModelArch.from_hf_config(entry["config"], name=entry["id"])
    return ModelArch(
        **{
            **arch.__dict__,
            "source": entry["source"],
            "published": entry.get("published", {}),
            "hf_repo": entry.get("hf_repo", ""),
        }
    )


def resolve_model(spec: str) -> ModelArch:
    """A catalogue id (case-insensitive; a Hugging Face repo name works too) or a directory with config.json."""
    key = spec.strip().lower()
    models = catalogue()
    if key in models:
        return models[key]
    for m in models.values():
        if m.hf_repo.lower() == key or m.hf_repo.lower().split("/")[-1] == key:
            return m
    path = Path(spec).expanduser()
    cfg_file = path / "config.json" if path.is_dir() else path
    if cfg_file.name == "config.json" and cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read {cfg_file}: {e}; give a valid Hugging Face config.json") from None
        return ModelArch.from_hf_config(cfg, name=str(path))
    nearest = _nearest(key, list(models))
    raise UserError(
        f"unknown model {spec!r}: not in the catalogue and not a folder with config.json. "
        f"Known: {', '.join(models)}" + (f". Did you mean {nearest!r}?" if nearest else "")
    )


def _nearest(key: str, names: list[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return match[0] if match else None
