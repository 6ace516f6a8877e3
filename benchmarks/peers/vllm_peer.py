"""vLLM's CPU build, run by benchmarks/common.run_peer with .venv-vllm/bin/python on a safetensors copy.

Reads one JSON job on stdin ({"mode": "single"|"throughput", "model": HF folder, ...}) and prints one JSON result
line as its last line. Greedy, EOS ignored, prefix caching off (every prompt is computed, as for the others).
"""

import json
import sys
import time


def main() -> None:
    job = json.loads(sys.stdin.read())
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=job["model"],
        dtype=job.get("dtype", "bfloat16"),
        max_model_len=job.get("max_model_len", 2048),
        max_num_seqs=job.get("max_num_seqs", 64),
        enable_prefix_caching=False,
        seed=0,
    )

    def run(prompts: list[list[int]], lens: list[int]) -> None:
        params = [SamplingParams(temperature=0, max_tokens=n, min_tokens=n, ignore_eos=True) for n in lens]
        llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)

    run([[1, 2, 3, 4]], [4])
    if job["mode"] == "single":
        p, n = job["prompt"], job["new"]
        t0 = time.perf_counter()
        run([p], [1])
        ttft = time.perf_counter() - t0
        t0 = time.perf_counter()
        run([p], [n])
        total = time.perf_counter() - t0
        out = {"ttft_s": ttft, "decode_tok_s": (n - 1) / (total - ttft)}
    else:
        work = job["work"]
        t0 = time.perf_counter()
        run([p for p, _ in work], [n for _, n in work])
        elapsed = time.perf_counter() - t0
        tokens = sum(n for _, n in work)
        out = {"output_tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed}
    import vllm

    out["version"] = vllm.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
