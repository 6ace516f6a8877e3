"""Quantization: perplexity and single-user speed for bf16, int8, int4 round-to-nearest, int4 AWQ and the GGUF's
own Q4_1 tensors kept packed, with transformers (bf16, same weights) as the outside peer, all in one run.

Perplexity is on text we did not write and every Debian machine has: /usr/share/common-licenses/GPL-3 (first
--eval-tokens tokens, windows of 512). The AWQ checkpoint is calibrated on different text (pydoc pages of four
stdlib modules). Speed: a ~100-token prompt, 128 new greedy tokens, one request; TTFT and decode tokens/s.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quant.py [--threads 1] [--eval-tokens 2048]
"""

from __future__ import annotations

import argparse
import math
import pydoc
import time
from pathlib import Path

import torch
from common import DATA_DIR, print_table, wait_compiled, write_results  # noqa: E402

MODEL = "smollm2-135m-instruct"
EVAL_TEXT = Path("/usr/share/common-licenses/GPL-3")
CLAIM = {"accuracy_loss_pct": 2.0, "speedup": 3.0}  # the deployment guide's AWQ claim


def calibration_text() -> str:
    import collections
    import functools
    import itertools
    import pathlib

    return "".join(
        pydoc.render_doc(m, renderer=pydoc.plaintext) for m in (collections, itertools, functools, pathlib)
    )


def awq_checkpoint() -> Path:
    from r1stack.engine.quant.make import quantize_checkpoint

    out = DATA_DIR / "quantized" / f"{MODEL}-awq"
    if not (out / "config.json").exists():
        calib = DATA_DIR / "quantized" / "calibration.txt"
        calib.parent.mkdir(parents=True, exist_ok=True)
        calib.write_text(calibration_text())
        quantize_checkpoint(MODEL, "awq", out, DATA_DIR, calib)
    return out


@torch.inference_mode()
def perplexity(model, ids: list[int], window: int = 512) -> float:
    from r1stack.engine.quant.awq import prefill_hidden

    nll, n = 0.0, 0
    for i in range(0, len(ids) - 1, window):
        chunk = ids[i : i + window + 1]
        logits = model.compute_logits(prefill_hidden(model, chunk[:-1])).float()
        nll += torch.nn.functional.cross_entropy(logits, torch.tensor(chunk[1:]), reduction="sum").item()
        n += len(chunk) - 1
    return math.exp(nll / n)


def prompt_ids(tokenizer) -> list[int]:
    text = pydoc.render_doc(math, renderer=pydoc.plaintext)
    return tokenizer(text, add_special_tokens=False)["input_ids"][:100]


def speed_r1stack(llm, prompt: list[int], new: int) -> dict:
    from r1stack import SamplingParams

    compiled = wait_compiled(llm)  # the decode step compiles in the background: not part of the timing
    llm.generate([{"prompt_token_ids": prompt[:8]}], SamplingParams(max_tokens=4, temperature=0))  # warm up
    params = SamplingParams(max_tokens=new, min_tokens=new, temperature=0, ignore_eos=True)
    t0 = time.perf_counter()
    out = llm.generate([{"prompt_token_ids": prompt}], params)[0]
    total = time.perf_counter() - t0
    ttft = out.metrics.first_token_time - out.metrics.arrival_time
    return {"ttft_s": ttft, "decode_tok_s": (new - 1) / (total - ttft), "compiled_decode": compiled}


def speed_transformers(gguf: Path, prompt: list[int], new: int) -> dict:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        hf.generate(ids[:, :8], max_new_tokens=4, do_sample=False)
        t0 = time.perf_counter()
        hf.generate(ids, max_new_tokens=1, do_sample=False)
        ttft = time.perf_counter() - t0
        t0 = time.perf_counter()
        hf.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        total = time.perf_counter() - t0
    return {"ttft_s": ttft, "decode_tok_s": (new - 1) / (total - ttft)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-tokens", type=int, default=2048)
    ap.add_argument("--new-tokens", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from r1stack import LLM
    from r1stack.engine.quant.apply import weight_bytes
    from r1stack.engine.store import resolve

    gguf = resolve(MODEL, DATA_DIR).path
    variants = [
        ("bf16", MODEL, "none"),
        ("int8", MODEL, "int8"),
        ("int4 rtn", MODEL, "int4"),
        ("int4 awq", str(awq_checkpoint()), "awq"),
        ("gguf q4_1 packed", MODEL, "gguf"),
    ]
    rows, results = [], {}
    eval_ids = None
    for label, model, quant in variants:
        llm = LLM(model, dtype="bfloat16", data_dir=DATA_DIR, kv_cache_bytes=64 << 20, quantization=quant)
        tok = llm.get_tokenizer()
        if eval_ids is None:
            eval_ids = tok(EVAL_TEXT.read_text(), add_special_tokens=False)["input_ids"][: a.eval_tokens]
            prompt = prompt_ids(tok)
        r = {"perplexity": perplexity(llm.engine.model, eval_ids), **speed_r1stack(llm, prompt, a.new_tokens)}
        r["weight_bytes"] = weight_bytes(llm.engine.model)
        results[label] = r
        del llm
    results["transformers bf16"] = speed_transformers(gguf, prompt, a.new_tokens)
    base = results["bf16"]
    for label, r in results.items():
        ppl = r.get("perplexity")
        r["ppl_change_pct"] = None if ppl is None else 100 * (ppl / base["perplexity"] - 1)
        r["decode_speedup_vs_bf16"] = r["decode_tok_s"] / base["decode_tok_s"]
        r["ttft_ratio_vs_bf16"] = r["ttft_s"] / base["ttft_s"]
        rows.append(
            [
                label,
                "-" if ppl is None else f"{ppl:.3f}",
                "-" if ppl is None else f"{r['ppl_change_pct']:+.2f}%",
                f"{r['decode_tok_s']:.1f}",
                f"{r['decode_speedup_vs_bf16']:.2f}x",
                f"{1000 * r['ttft_s']:.0f}",
                f"{r['weight_bytes'] / 2**20:.0f}" if "weight_bytes" in r else "-",
            ]
        )
    print_table(
        f"quantization on {MODEL} ({a.threads} thread(s); claim: <{CLAIM['accuracy_loss_pct']}% loss, "
        f"{CLAIM['speedup']}x faster)",
        ["variant", "ppl GPL-3", "ppl vs bf16", "decode tok/s", "vs bf16", "TTFT ms", "weights MiB"],
        rows,
    )
    write_results(
        "quant",
        {
            "model": MODEL,
            "threads": a.threads,
            "eval_text": str(EVAL_TEXT),
            "eval_tokens": len(eval_ids),
            "prompt_tokens": len(prompt),
            "new_tokens": a.new_tokens,
            "claim": CLAIM,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
