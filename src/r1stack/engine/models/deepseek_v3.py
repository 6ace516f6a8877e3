"""DeepSeek-V3 architecture (DeepSeek-R1, R1-Zero, V3): MLA attention over a paged latent cache, dense layers first,
then mixture-of-experts layers; loads the published safetensors checkpoints, FP8 block-scaled ones included."""

from __future__ import annotations

import re

import torch
from torch import nn

from r1stack.engine.attention import AttentionMetadata
from r1stack.engine.config import ModelConfig
from r1stack.engine.fp8 import FP8_DTYPE, Fp8Linear, dequantize_blocks
from r1stack.engine.models.llama import RMSNorm
from r1stack.engine.models.mla import MLARotary, MLAttention
from r1stack.engine.models.moe import MLP, MoE, Router
from r1stack.errors import UserError

_EXPERT = re.compile(r"layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$")
_LAYER = re.compile(r"layers\.(\d+)\.")


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int, rotary: MLARotary):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = MLAttention(cfg, rotary)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        dense = index < cfg.moe.first_k_dense_replace
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size) if dense else MoE(cfg.hidden_size, cfg.moe)

    def forward(self, x, cos, sin, cache, meta):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, meta)
        return x + self.mlp(self.post_attention_layernorm(x))


class DeepseekV3ForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.rotary = MLARotary(cfg)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, self.rotary) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.keep_fp8 = False  # the loader sets it: FP8 checkpoint weights stay FP8 (see engine/fp8.py)

    def to(self, *args, **kwargs):
        """Routers stay float32 whatever dtype the rest takes."""
        super().to(*args, **kwargs)
        for m in self.modules():
            if isinstance(m, Router):
                m.weight.data = m.weight.data.float()
                m.e_score_correction_bias.data = m.e_score_correction_bias.data.float()
        return self

    def forward(self, input_ids, positions, kv_caches, meta: AttentionMetadata) -> torch.Tensor:
        """kv_caches: per layer (latent cache [slots + 1, kv_lora_rank + rope], unused zero-width tensor)."""
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(positions, x.dtype)
        for layer, (cache, _) in zip(self.layers, kv_caches, strict=True):
            x = layer(x, cos, sin, cache, meta)
        return self.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    # ---- expert load ------------------------------------------------------------------------------------------
    def moe_layers(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if isinstance(layer.mlp, MoE)]

    def expert_load(self) -> torch.Tensor:
        """Tokens routed to each expert since start-up: [num MoE layers, n_routed_experts] (int64, CPU)."""
        return torch.stack([self.layers[i].mlp.load.cpu() for i in self.moe_layers()])

    def last_expert_load(self) -> torch.Tensor:
        """The same for the latest forward (one engine step) only."""
        return torch.stack([self.layers[i].mlp.last_load.cpu() for i in self.moe_layers()])

    def reset_expert_load(self) -> None:
        for i in self.moe_layers():
            moe = self.layers[i].mlp
            moe.load = torch.zeros(moe.m.n_routed_experts, dtype=torch.long, device=moe.w13.device)
            moe.last_load = torch.zeros_like(moe.load)

    # ---- weights ----------------------------------------------------------------------------------------------
    def load_weights(self, tensors) -> None:
        """Fills every parameter from (checkpoint name, tensor) pairs; FP8 weights are dequantized per block
        with their weight_scale_inv to the model's dtype, or kept as FP8 when `keep_fp8` is set. Layers past
        num_layers (R1's multi-token-prediction layer 61) are skipped."""
        self.reset_expert_load()  # the counters were built on the meta device
        params = dict(self.named_parameters())
        block = self.cfg.fp8_block or (128, 128)
        keep = self.keep_fp8 and self.cfg.fp8_block is not None
        if keep:
            for i in self.moe_layers():
                self.layers[i].mlp.keep_fp8(block)
        pending: dict[str, dict[str, torch.Tensor]] = {}  # FP8 weights waiting for their scale, or scales
        filled: set[str] = set()
        for hf_name, tensor in tensors:
            name = hf_name.removeprefix("model.")
            layer = _LAYER.match(name)
            if "rotary_emb" in name or (layer and int(layer.group(1)) >= self.cfg.num_layers):
                continue
            if name == "lm_head.weight" and self.cfg.tie_word_embeddings:
                continue
            if name.endswith("weight_scale_inv") or tensor.dtype == FP8_DTYPE:
                key = name.removesuffix("_scale_inv")
                entry = pending.setdefault(key, {})
                entry["scale" if name.endswith("_scale_inv") else "weight"] = tensor
                if len(entry) < 2:
                    continue
                del pending[key]
                if keep:
                    self._fill_fp8(key, hf_name, entry["weight"], entry["scale"], block, params)
                    filled.add(key)
                    continue
                name, tensor = key, dequantize_blocks(entry["weight"], entry["scale"], block, torch.float32)
            self._target(name, hf_name, tensor.shape, params).copy_(tensor)
            filled.add(name)
        if pending:
            first = next(iter(pending))
            raise UserError(
                f"the checkpoint has an FP8 weight without its scale (or a scale without its weight): "
                f"{first}; it is incomplete, download it again"
            )
        missing = sorted(self._expected_names() - filled)
        if missing:
            raise UserError(
                f"the checkpoint lacks {len(missing)} tensors (first: {missing[0]}); it is incomplete, "
                f"download it again"
            )
        if self.cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def _fill_fp8(self, name: str, hf_name: str, weight, scale, block, params: dict) -> None:
        """Store one FP8 weight and its block scales as they are: into the FP8 experts, or as an Fp8Linear in
        place of the layer's nn.Linear."""
        if _EXPERT.match(name):
            self._target(name, hf_name, weight.shape, params, fp8=True).copy_(weight)
            self._target(name, hf_name, scale.shape, params, fp8=True, scales=True).copy_(scale)
            return
        module_name = name.removesuffix(".weight")
        try:
            linear = self.get_submodule(module_name)
        except AttributeError:
            linear = None
        if not isinstance(linear, nn.Linear):
            raise UserError(f"the checkpoint has an FP8 tensor {hf_name!r} this architecture does not know")
        if tuple(linear.weight.shape) != tuple(weight.shape):
            raise UserError(
                f"tensor {hf_name} has shape {tuple(weight.shape)}, expected {tuple(linear.weight.shape)}: "
                f"config and weights disagree"
            )
        dev = linear.weight.device
        fp8 = Fp8Linear(weight.to(dev), scale.to(dev), block, linear.bias, linear.weight.dtype)
        parent, _, attr = module_name.rpartition(".")
        setattr(self.get_submodule(parent), attr, fp8)

    def _target(
        self, name: str, hf_name: str, shape, params: dict, fp8: bool = False, scales: bool = False
    ) -> torch.Tensor:
        m = _EXPERT.match(name)
        if m:
            layer, expert, proj = int(m.group(1)), int(m.group(2)), m.group(3)
            moe = self.layers[layer].mlp
            if not isinstance(moe, MoE) or expert >= moe.m.n_routed_experts:
                raise UserError(f"the checkpoint has an expert {hf_name!r} that config.json does not declare")
            if moe.block is not None and not fp8:
                raise UserError(
                    f"config.json declares FP8 weights but {hf_name} is stored wide; the checkpoint is "
                    f"inconsistent: download it again"
                )
            w13, w2 = (moe.w13_scale_inv, moe.w2_scale_inv) if scales else (moe.w13.data, moe.w2.data)
            half = w13.shape[1] // 2
            p = w2[expert] if proj == "down" else w13[expert]
            p = p if proj == "down" else p.narrow(0, 0 if proj == "gate" else half, half)
        else:
            if name not in params:
                raise UserError(
                    f"the checkpoint has a tensor {hf_name!r} this architecture does not know; "
                    f"is config.json from the same model?"
                )
            p = params[name].data
        if tuple(p.shape) != tuple(shape):
            raise UserError(
                f"tensor {hf_name} has shape {tuple(shape)}, expected {tuple(p.shape)}: "
                f"config and weights disagree"
            )
        return p

    def _expected_names(self) -> set[str]:
        names = set()
        for name, _ in self.named_parameters():
            if name.endswith(".w13") or name.endswith(".w2"):
                prefix = name.rsplit(".", 1)[0]
                projs = ("gate", "up") if name.endswith(".w13") else ("down",)
                names |= {
                    f"{prefix}.experts.{e}.{p}_proj.weight"
                    for e in range(self.cfg.moe.n_routed_experts)
                    for p in projs
                }
            elif not (name == "lm_head.weight" and self.cfg.tie_word_embeddings):
                names.add(name)
        return names
