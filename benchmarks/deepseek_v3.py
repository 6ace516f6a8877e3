"""DeepSeek-V3/R1 in the native engine: the latent KV cache's bytes per token against a standard multi-head cache
of the same model, and one MLA decode step with weight absorption against expanding the cached latent.

    .venv/bin/python benchmarks/deepseek_v3.py [--batch 8] [--context 1024] [--threads 1]

Nothing is downloaded: byte counts come from the published 671B configuration (transformers' DeepseekV3Config
defaults), timings from one randomly initialised MLA layer. Writes benchmarks/results/deepseek_v3.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import print_table, write_results

from r1stack.engine.attention import AttentionMetadata
from r1stack.engine.config import ModelConfig
from r1stack.engine.models.mla import MLARotary, MLAttention


def kv_rows() -> list[list]:
    from transformers import DeepseekV3Config

    r1 = ModelConfig.from_hf(DeepseekV3Config())
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        latent, mha = r1.kv_bytes_per_token(dtype), r1.mha_kv_bytes_per_token(dtype)
        rows.append(["DeepSeek-R1 671B", str(dtype).removeprefix("torch."), latent, mha, mha / latent])
    return rows


def decode_step_ms(attn: MLAttention, cache, meta, x, cos, sin, absorb: bool, reps: int) -> float:
    attn.absorb = absorb
    times = []
    with torch.inference_mode():
        for _ in range(reps + 2):
            t = time.perf_counter()
            attn(x, cos, sin, cache, meta)
            times.append(time.perf_counter() - t)
    return statistics.median(times[2:]) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import DeepseekV3Config

    # One layer at a quarter of R1's attention widths (R1: 128 heads, kv_lora 512, nope 128, rope 64, v 128).
    hf = DeepseekV3Config(
        hidden_size=1792,
        num_attention_heads=32,
        q_lora_rank=384,
        kv_lora_rank=128,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        num_hidden_layers=1,
        max_position_embeddings=args.context + 16,
    )
    cfg = ModelConfig.from_hf(hf)
    rotary = MLARotary(cfg)
    rotary.build(torch.device("cpu"), args.context + 8)
    attn = MLAttention(cfg, rotary).eval()
    b, ctx = args.batch, args.context
    slots = b * ctx
    cache = torch.randn(slots + 1, cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim) * 0.1
    decode_slots = torch.arange(slots).view(b, ctx)
    meta = AttentionMetadata(
        slot_mapping=decode_slots[:, -1].clone(),
        num_decode=b,
        decode_slots=decode_slots,
        decode_mask=torch.ones(b, 1, 1, ctx, dtype=torch.bool),
        prefills=[],
    )
    x = torch.randn(b, cfg.hidden_size)
    cos, sin = rotary(torch.full((b,), ctx - 1), x.dtype)
    absorbed = decode_step_ms(attn, cache, meta, x, cos, sin, True, args.reps)
    expanded = decode_step_ms(attn, cache, meta, x, cos, sin, False, args.reps)

    kv = kv_rows()
    print_table(
        "KV cache bytes per token", ["model", "dtype", "MLA latent", "standard MHA", "MHA / latent"], kv
    )
    timing = [
        ["absorbed (reads latent)", absorbed, 1.0],
        ["expanded (kv_b_proj per step)", expanded, expanded / absorbed],
    ]
    print_table(
        f"MLA decode step, batch {b} x context {ctx}, fp32, {args.threads} thread(s)",
        ["decode path", "ms / step (median)", "vs absorbed"],
        timing,
    )
    path = write_results(
        "deepseek_v3",
        {
            "kv_bytes_per_token": [
                dict(zip(["model", "dtype", "latent", "mha", "ratio"], r, strict=True)) for r in kv
            ],
            "decode_step": {
                "batch": b,
                "context": ctx,
                "threads": args.threads,
                "dtype": "float32",
                "layer": {"heads": 32, "kv_lora_rank": 128, "qk_nope": 128, "qk_rope": 64, "v": 128},
                "absorbed_ms": absorbed,
                "expanded_ms": expanded,
                "expanded_over_absorbed": expanded / absorbed,
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
