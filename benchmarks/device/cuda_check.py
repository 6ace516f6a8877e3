"""Device check: build a SmolLM2-shaped model with random weights (the real file is too big to carry), then
compare r1stack on CUDA with transformers on CUDA: greedy equality (fp32) and the seeded/batched invariants."""

import sys
from pathlib import Path

import random_smollm
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from r1stack import LLM, SamplingParams

out = random_smollm.build(Path(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(out)

prompts = [
    "The capital of France is",
    "def fibonacci(n):",
    "中国的首都是",
    "Once upon a time",
    "import numpy as np\n",
    "Q: 12 x 7?\nA:",
    "请介绍长城。",
    "Hello, my name is",
]
llm = LLM(str(out), dtype="float32", device="cuda", data_dir="gpu-run/d", kv_cache_bytes=2 << 30)
hf = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).cuda().eval()
ours = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=64, min_tokens=64))
same = 0
for p, o in zip(prompts, ours, strict=False):
    ids = tok(p, return_tensors="pt").input_ids.cuda()
    ref = hf.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)[0, ids.shape[1] :].tolist()
    k = next((i for i, (a, b) in enumerate(zip(ref, o.outputs[0].token_ids, strict=False)) if a != b), 64)
    same += k == 64
    print(f"cuda fp32 greedy vs transformers: {k}/64 tokens equal for {p!r}")
print(f"EQUAL {same}/8")
alone = [
    llm.generate(p, SamplingParams(temperature=0, max_tokens=32, ignore_eos=True))[0].outputs[0].token_ids
    for p in prompts * 4
]
batch = [
    o.outputs[0].token_ids
    for o in llm.generate(prompts * 4, SamplingParams(temperature=0, max_tokens=32, ignore_eos=True))
]
print("32 batched == alone:", sum(a == b for a, b in zip(alone, batch, strict=False)), "/ 32")
sp = SamplingParams(temperature=0.9, top_p=0.95, seed=42, max_tokens=32, ignore_eos=True)
solo = llm.generate(prompts[0], sp)[0].outputs[0].token_ids
crowd = (
    llm.generate(prompts * 2 + [prompts[0]], [SamplingParams(temperature=1.0, max_tokens=20)] * 16 + [sp])[-1]
    .outputs[0]
    .token_ids
)
print("seeded alone == in batch of 16:", solo == crowd)

# ---- the compiled decode step and its CUDA graphs (the default above) vs enforce_eager ------------------------
import time  # noqa: E402

runner = llm.engine.runner
print(
    "compiled decode step:",
    "failed -> eager" if runner.decode_step.failed else f"{runner.decode_step.calls} layer calls",
    "| CUDA graphs captured:",
    sorted(runner.graphs.graphs),
    "broken:",
    sorted(runner.graphs.broken),
)
eager = LLM(
    str(out), dtype="float32", device="cuda", data_dir="gpu-run/d", kv_cache_bytes=2 << 30, enforce_eager=True
)
gp = SamplingParams(temperature=0, max_tokens=48, ignore_eos=True)
want = [o.outputs[0].token_ids for o in eager.generate(prompts * 4, gp)]
got = [o.outputs[0].token_ids for o in llm.generate(prompts * 4, gp)]
print(
    "GRAPH+COMPILED == EAGER (fp32, 32 prompts x 48 tokens):",
    sum(a == b for a, b in zip(got, want, strict=False)),
    "/ 32",
)
for dt in ("bfloat16",):
    for flag in (True, False):
        e = LLM(
            str(out),
            dtype=dt,
            device="cuda",
            data_dir="gpu-run/d",
            kv_cache_bytes=2 << 30,
            enforce_eager=flag,
        )
        e.generate(prompts * 8, SamplingParams(max_tokens=16, ignore_eos=True))  # warm-up / capture
        t0 = time.perf_counter()
        outs = e.generate(prompts * 8, SamplingParams(temperature=0, max_tokens=128, ignore_eos=True))
        torch.cuda.synchronize()
        n = sum(len(o.outputs[0].token_ids) for o in outs)
        print(
            f"{dt} {'eager' if flag else 'compiled+graphs'}: batch 64 x 128 tokens {n / (time.perf_counter() - t0):.0f} tok/s"
        )
        del e
