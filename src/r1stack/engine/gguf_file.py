"""GGUF files: model config from the metadata, tensors dequantized in torch (fast paths for Q4_0, Q4_1, Q8_0;
the gguf package's numpy code for every other type)."""

from __future__ import annotations

import numpy as np
import torch

from r1stack.engine.config import SUPPORTED_ARCHITECTURES, ModelConfig
from r1stack.errors import UserError


def open_gguf(path):
    import gguf

    return gguf.GGUFReader(str(path))


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    value = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value.item() if value.size == 1 else value.tolist()


def config_from_gguf(reader) -> ModelConfig:
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"unsupported architecture {arch!r} in this GGUF file; this engine runs "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    heads = _field(reader, f"{arch}.attention.head_count")
    hidden = _field(reader, f"{arch}.embedding_length")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = _field(reader, f"{arch}.vocab_size") or (len(tokens.data) if tokens else None)
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    names = {t.name for t in reader.tensors}
    return ModelConfig(
        architecture=arch,
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=_field(reader, f"{arch}.feed_forward_length"),
        num_layers=_field(reader, f"{arch}.block_count"),
        num_heads=heads,
        num_kv_heads=_field(reader, f"{arch}.attention.head_count_kv", heads),
        head_dim=_field(reader, f"{arch}.attention.key_length", hidden // heads),
        rms_norm_eps=float(np.float32(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon"))),
        rope_theta=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        max_position_embeddings=_field(reader, f"{arch}.context_length"),
        tie_word_embeddings="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names,
        eos_token_ids=[eos] if eos is not None else [],
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
    )


def dequantize(t) -> torch.Tensor:
    """One reader tensor -> float32 torch tensor in PyTorch's (out, in) order."""
    shape = [int(x) for x in reversed(t.shape)]
    kind = t.tensor_type.name
    raw = torch.from_numpy(np.asarray(t.data).view(np.uint8).reshape(-1))
    if kind == "Q8_0":  # blocks of 32: f16 scale, 32 x int8
        b = raw.view(-1, 34)
        d = b[:, :2].contiguous().view(torch.float16).float()
        q = b[:, 2:].contiguous().view(torch.int8).float()
        return (d * q).view(shape)
    if kind in ("Q4_0", "Q4_1"):  # blocks of 32: f16 scale (+ f16 min), 16 bytes of nibbles (low half first)
        head = 2 if kind == "Q4_0" else 4
        b = raw.view(-1, head + 16)
        d = b[:, :2].contiguous().view(torch.float16).float()
        qs = b[:, head:]
        q = torch.cat([qs & 0x0F, qs >> 4], dim=1).float()
        if kind == "Q4_0":
            return (d * (q - 8)).view(shape)
        m = b[:, 2:4].contiguous().view(torch.float16).float()
        return (d * q + m).view(shape)
    if kind in ("F32", "F16", "BF16"):
        if kind == "BF16":
            return torch.from_numpy(np.asarray(t.data).copy()).view(torch.bfloat16).float().view(shape)
        return torch.from_numpy(np.asarray(t.data, dtype=np.float32).copy()).view(shape)
    import gguf

    return torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type))).view(shape)
