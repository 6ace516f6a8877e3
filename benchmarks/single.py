"""Single user: time to first token for a 100-token prompt and decode tokens/s over 128 new tokens (greedy, EOS
ignored, one request at a time), r1stack in bf16, int8, int4 and the GGUF's Q4_1 kept packed, beside transformers
(bf16), llama.cpp (the same GGUF, via llama-cpp-python) and vLLM-CPU (bf16, a safetensors copy), in one run, every
system on the same number of threads. Peers that are not set up are listed as skipped. Writes results/single.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/single.py [--threads 1] [--new-tokens 128] [--no-peers]
"""

from __future__ import annotations

import argparse

import torch
from common import DATA_DIR, add_engine_mode, print_table, run_peer, safetensors_copy, write_results  # noqa: E402
from quant import MODEL, prompt_ids, speed_r1stack, speed_transformers

VARIANTS = [
    ("r1stack bf16", "none"),
    ("r1stack int8", "int8"),
    ("r1stack int4", "int4"),
    ("r1stack gguf q4_1", "gguf"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--no-peers", action="store_true", help="r1stack and transformers only")
    add_engine_mode(ap)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from r1stack import LLM
    from r1stack.engine.store import resolve

    gguf = resolve(MODEL, DATA_DIR).path
    results: dict[str, dict] = {}
    prompt = None
    for label, quant in VARIANTS:
        llm = LLM(
            MODEL,
            dtype="bfloat16",
            data_dir=DATA_DIR,
            kv_cache_bytes=64 << 20,
            quantization=quant,
            enforce_eager=a.enforce_eager,
        )
        prompt = prompt or prompt_ids(llm.get_tokenizer())
        results[label] = speed_r1stack(llm, prompt, a.new_tokens)
        del llm
    results["transformers bf16"] = speed_transformers(gguf, prompt, a.new_tokens)
    if not a.no_peers:
        job = {"mode": "single", "prompt": prompt, "new": a.new_tokens}
        results["llama.cpp q4_1"] = run_peer("llama.cpp", {**job, "model": str(gguf)}, a.threads)
        results["vLLM-CPU bf16"] = run_peer(
            "vLLM-CPU", {**job, "model": str(safetensors_copy(MODEL))}, a.threads
        )
    rows = []
    for label, r in results.items():
        if "skipped" in r:
            rows.append([label, "-", "-", r["skipped"]])
        else:
            rows.append(
                [label, f"{1000 * r['ttft_s']:.0f}", f"{r['decode_tok_s']:.1f}", r.get("version", "")]
            )
    print_table(
        f"single user, {len(prompt)}-token prompt, {a.new_tokens} new tokens, {a.threads} thread(s)",
        ["system", "TTFT ms", "decode tok/s", "note"],
        rows,
    )
    write_results(
        "single",
        {
            "model": MODEL,
            "threads": a.threads,
            "prompt_tokens": len(prompt),
            "new_tokens": a.new_tokens,
            "enforce_eager": a.enforce_eager,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
