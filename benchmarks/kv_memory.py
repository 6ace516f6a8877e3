"""KV cache memory under the concurrency workload (throughput.py's 64 requests): bytes reserved vs bytes holding
live tokens, sampled at every engine step, for r1stack's paged cache (blocks in use) and for a contiguous cache
that preallocates max-length rows per request slot (as static-cache engines do), both for the model's serving
context (--max-model-len) and for the workload's own longest request (the best a contiguous cache could do
knowing the lengths in advance). Writes results/kv_memory.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kv_memory.py [--threads 1] [--requests 64] [--max-model-len 2048]
"""

from __future__ import annotations

import argparse

import torch
from common import DATA_DIR, print_table, write_results  # noqa: E402
from throughput import workload

MODEL = "smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from rich.progress import Progress

    from r1stack import LLM, SamplingParams

    llm = LLM(
        MODEL,
        dtype=a.dtype,
        data_dir=DATA_DIR,
        max_num_seqs=a.requests,
        max_model_len=a.max_model_len,
        kv_cache_bytes=2 << 30,
    )
    eng = llm.engine
    per_token = eng.config.kv_bytes_per_token(eng.dtype)
    block_bytes = per_token * eng.args.block_size
    work = workload(a.requests, eng.config.vocab_size)
    for i, (p, n) in enumerate(work):
        eng.add_request(str(i), None, SamplingParams(temperature=0, max_tokens=n, ignore_eos=True), p)
    samples = []  # (paged reserved, used, requests in flight) per step
    with Progress(transient=True) as bar:
        task = bar.add_task("kv memory", total=len(work))
        while eng.has_unfinished():
            outs = eng.step()
            bm, running = eng.block_manager, eng.scheduler.running
            used_tokens = sum(s.num_computed for s in running)
            samples.append(
                ((bm.num_blocks - bm.num_free_blocks) * block_bytes, used_tokens * per_token, len(running))
            )
            bar.advance(task, sum(o.finished for o in outs))
    longest = max(len(p) + n for p, n in work)
    rows, result = [], {}
    peak_inflight = max(s[2] for s in samples)
    for label, reserved in (
        ("paged (r1stack)", [s[0] for s in samples]),
        (
            f"contiguous, {a.max_model_len} per slot",
            [a.requests * a.max_model_len * per_token] * len(samples),
        ),
        (f"contiguous, {longest} per slot", [a.requests * longest * per_token] * len(samples)),
    ):
        used = [s[1] for s in samples]
        peak_r, mean_r = max(reserved), sum(reserved) / len(reserved)
        mean_util = sum(u / r for u, r in zip(used, reserved, strict=True) if r) / len(used)
        result[label] = {
            "peak_reserved_bytes": peak_r,
            "mean_reserved_bytes": mean_r,
            "mean_utilisation": mean_util,
        }
        rows.append(
            [
                label,
                f"{peak_r / 2**20:.1f}",
                f"{mean_r / 2**20:.1f}",
                f"{max(used) / 2**20:.1f}",
                f"{100 * mean_util:.0f}%",
            ]
        )
    print_table(
        f"KV memory, {a.requests} requests ({peak_inflight} in flight at most), {a.dtype}, "
        f"{per_token} bytes/token, block {eng.args.block_size}",
        ["cache", "peak reserved MiB", "mean reserved MiB", "peak used MiB", "mean used/reserved"],
        rows,
    )
    write_results(
        "kv_memory",
        {
            "model": MODEL,
            "workload": {
                "requests": a.requests,
                "prompt_len": "uniform[32,128]",
                "output_len": "uniform[32,256]",
            },
            "dtype": a.dtype,
            "bytes_per_token": per_token,
            "block_size": eng.args.block_size,
            "max_model_len": a.max_model_len,
            "longest_request_tokens": longest,
            "steps": len(samples),
            "peak_used_bytes": max(s[1] for s in samples),
            "results": result,
        },
    )


if __name__ == "__main__":
    main()
