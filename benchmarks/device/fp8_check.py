"""Device check for FP8 weights kept as FP8 on a GPU with FP8 support (issue 9): a tiny DeepSeek-V3 written here,
quantized to DeepSeek's 128x128 FP8 blocks; on CUDA the default load keeps them FP8 (`Fp8Linear`, FP8 experts) and
must give the tokens and (close) logits of the same checkpoint widened at load on the CPU. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "engine"))
from test_deepseek_v3 import (  # noqa: E402  (the test's tiny model writer: one definition of it)
    PROMPTS,
    _full_forward,
    _greedy,
    _quantize_checkpoint,
    _reference,
    _tiny_config,
    _tokenizer,
)

from r1stack import LLM  # noqa: E402
from r1stack.engine.fp8 import FP8_DTYPE, Fp8Linear, keeps_fp8  # noqa: E402


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "m").mkdir()
    _reference(_tiny_config()).save_pretrained(tmp / "m", safe_serialization=True)
    _tokenizer(tmp / "m")
    _quantize_checkpoint(tmp / "m", tmp / "fp8")
    kw = dict(dtype="float32", kv_cache_bytes=1 << 20, enable_prefix_caching=False)
    cpu = LLM(str(tmp / "fp8"), device="cpu", **kw)
    gpu = LLM(str(tmp / "fp8"), device="cuda", **kw)
    model = gpu.engine.model
    kept = (
        isinstance(model.layers[0].self_attn.kv_b_proj, Fp8Linear)
        and model.layers[2].mlp.w13.dtype == FP8_DTYPE
    )
    with torch.device("cuda"):  # the test helper builds its inputs with the default device
        on_gpu = _full_forward(gpu, PROMPTS[1]).cpu()
    diff = (on_gpu - _full_forward(cpu, PROMPTS[1])).abs().max().item()
    same = _greedy(gpu) == _greedy(cpu)
    bf16 = LLM(str(tmp / "fp8"), device="cuda", dtype="bfloat16", kv_cache_bytes=1 << 20)
    bf16_tokens = _greedy(bf16)
    report = {
        "gpu": torch.cuda.get_device_name(),
        "capability": list(torch.cuda.get_device_capability()),
        "keeps_fp8_by_default": keeps_fp8(torch.device("cuda")),
        "kept_as_fp8": kept,
        "fp32_logits_max_abs_diff_vs_cpu_widened": diff,
        "fp32_greedy_tokens_equal_cpu": same,
        "bf16_generates": all(len(t) == len(bf16_tokens[0]) for t in bf16_tokens),
        "gpu_weight_bytes": sum(
            t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]
        ),
        "cpu_weight_bytes": sum(
            t.numel() * t.element_size()
            for t in [*cpu.engine.model.parameters(), *cpu.engine.model.buffers()]
        ),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
