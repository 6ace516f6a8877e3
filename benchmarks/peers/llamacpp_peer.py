"""llama.cpp through llama-cpp-python, run by benchmarks/common.run_peer with .venv-peers/bin/python.

Reads one JSON job on stdin ({"mode": "single"|"throughput", "model": GGUF path, "threads": n, ...}) and prints
one JSON result line. Greedy, EOS ignored; each request starts from an empty context (no prefix reuse).
"""

import json
import sys
import time

from llama_cpp import Llama


def generate(llm: Llama, prompt: list[int], n: int) -> tuple[float, float]:
    """(seconds to the first token, seconds in all) for n tokens after prompt."""
    llm.reset()  # forget the previous request's tokens, so that nothing is reused from it
    t0 = time.perf_counter()
    first = 0.0
    for i, _ in enumerate(llm.generate(prompt, top_k=1, temp=0.0, reset=True)):
        if i == 0:
            first = time.perf_counter() - t0
        if i + 1 == n:
            break
    return first, time.perf_counter() - t0


def main() -> None:
    job = json.loads(sys.stdin.read())
    # use_extra_bufts=False: the default build's AMX matmul path dies with SIGILL on this CPU.
    llm = Llama(
        model_path=job["model"],
        n_ctx=job.get("n_ctx", 2048),
        n_threads=job["threads"],
        n_threads_batch=job["threads"],
        use_extra_bufts=False,
        verbose=False,
        seed=0,
    )
    generate(llm, job.get("warmup", [1, 2, 3, 4]), 4)
    if job["mode"] == "single":
        ttft, _ = generate(llm, job["prompt"], 1)
        first, total = generate(llm, job["prompt"], job["new"])
        out = {"ttft_s": ttft, "decode_tok_s": (job["new"] - 1) / (total - first)}
    else:
        t0 = time.perf_counter()
        tokens = 0
        for prompt, n in job["work"]:
            generate(llm, prompt, n)
            tokens += n
        elapsed = time.perf_counter() - t0
        out = {"output_tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed}
    import llama_cpp

    out["version"] = llama_cpp.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
