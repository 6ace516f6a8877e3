"""Device check: int4 on CUDA through tinygemm (PyTorch's packed int4 kernel) against bf16, on a SmolLM2-shaped
random model: greedy agreement with bf16, and decode speed single-user and at 64 concurrent requests.

    python benchmarks/device/int4_cuda.py OUT_DIR
"""

import json
import sys
import time
from pathlib import Path

import random_smollm
import torch

from r1stack import LLM, SamplingParams

model = random_smollm.build(Path("/tmp/smol-random"))
prompts = ["The capital of France is", "def fibonacci(n):", "中国的首都是", "Once upon a time"]
rows, tokens = {}, {}
for quant in ("none", "int4"):
    llm = LLM(
        str(model), dtype="bfloat16", device="cuda", data_dir="gpu-run/d",
        kv_cache_bytes=2 << 30, quantization=quant,
    )  # fmt: skip
    kernels = sorted(
        {getattr(m, "kernel", None) or "-" for m in llm.engine.model.modules() if hasattr(m, "kernel")}
    )
    greedy = SamplingParams(temperature=0, max_tokens=64, min_tokens=64)
    tokens[quant] = [o.outputs[0].token_ids for o in llm.generate(prompts, greedy)]
    single = SamplingParams(temperature=0, max_tokens=128, min_tokens=128)
    llm.generate(prompts[:1], single)
    t = time.perf_counter()
    llm.generate(prompts[:1], single)
    single_s = time.perf_counter() - t
    batch = [{"prompt_token_ids": list(range(1000, 1100))}] * 64
    t = time.perf_counter()
    outs = llm.generate(batch, SamplingParams(temperature=0, max_tokens=128, ignore_eos=True))
    batch_s = time.perf_counter() - t
    rows[quant] = {
        "int4_kernels": kernels,
        "single_decode_tok_s": 128 / single_s,
        "batch64_tok_s": sum(len(o.outputs[0].token_ids) for o in outs) / batch_s,
        "weight_bytes": sum(b.numel() * b.element_size() for b in llm.engine.model.buffers())
        + sum(p.numel() * p.element_size() for p in llm.engine.model.parameters()),
    }
    del llm
    torch.cuda.empty_cache()
agree = [
    next((i for i, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), 64) / 64
    for x, y in zip(tokens["none"], tokens["int4"], strict=True)
]
result = {
    "gpu": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "rows": rows,
    "greedy_prefix_agreement": agree,
}
print(json.dumps(result, indent=1))
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
(Path(sys.argv[1]) / "int4-cuda.json").write_text(json.dumps(result, indent=1))
