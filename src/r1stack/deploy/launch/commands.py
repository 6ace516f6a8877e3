"""The two launch commands a plan turns into: the native `r1stack serve` and `vllm serve`."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from r1stack.deploy.planner import NO_FIT, Plan
from r1stack.deploy.quant import native_engine_quantization

# Exactly the flags `r1stack serve` takes for the engine and the socket; nothing else may be emitted.
NATIVE_FLAGS = {
    "--model": None,
    "--host": None,
    "--port": None,
    "--max-model-len": None,
    "--dtype": ("float32", "bfloat16", "float16"),
    "--device": ("cpu", "cuda"),
    "--kv-cache-bytes": None,
    "--kv-cache-fraction": None,
    "--max-num-seqs": None,
    "--quantization": ("none", "int8", "int4", "awq", "gguf"),
}
BLOCK = 16  # KV block size in tokens (native engine and vLLM default)


@dataclass(frozen=True)
class Command:
    argv: list[str] | None
    why_not: str = ""  # when argv is None: why this plan has no such command
    notes: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        return shlex.join(self.argv) if self.argv else ""


def serving_shape(p: Plan) -> tuple[int, int]:
    """(max_model_len, max_num_seqs) the KV cache really holds, never more than asked."""
    if p.max_concurrency_at_context >= 1:
        return p.context, max(1, min(p.concurrency, p.max_concurrency_at_context))
    return max(BLOCK, (p.kv_tokens // BLOCK) * BLOCK), 1


def native_command(p: Plan, host: str = "0.0.0.0", port: int = 8000, model_ref: str | None = None) -> Command:
    if p.verdict == NO_FIT:
        return Command(None, "the plan does not fit this hardware")
    if p.layout.tp * p.layout.pp > 1:
        return Command(
            None,
            f"needs {p.layout.tp * p.layout.pp} devices per replica; the native engine runs on "
            "one device: use the vLLM plan",
        )
    quant = native_engine_quantization(p.quant)
    if quant is None:
        return Command(None, f"the native engine has no {p.quant} kernels: use the vLLM plan")
    if p.model.is_mla or p.model.is_moe:
        return Command(
            None, "the native engine does not run MLA/MoE models on one device at this size: use vLLM"
        )
    max_len, seqs = serving_shape(p)
    need = -(-max_len // BLOCK) * BLOCK * seqs * p.kv_bytes_per_token
    kv_bytes = min(need, p.kv_budget_per_device)
    argv = [
        "r1stack",
        "serve",
        "--model",
        model_ref or p.model.name,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_len),
        "--dtype",
        p.kv_dtype,
        "--device",
        "cpu" if p.cluster.is_cpu else "cuda",
        "--kv-cache-bytes",
        str(int(kv_bytes)),
        "--max-num-seqs",
        str(seqs),
        "--quantization",
        quant,
    ]
    check_native_argv(argv)
    notes = {
        "awq": f"--quantization awq reads an AWQ checkpoint: give its folder as --model instead of {p.model.name}",
        "gguf": f"--quantization gguf reads a GGUF file: give the .gguf path as --model instead of {p.model.name}",
        "int8": "int8 weights are quantized from the 16-bit checkpoint when the engine loads it",
        "int4": "int4 weights are quantized from the 16-bit checkpoint when the engine loads it",
    }
    return Command(argv, notes=(notes[quant],) if quant in notes and not model_ref else ())


def check_native_argv(argv: list[str]) -> None:
    """Raise ValueError unless argv is `r1stack serve` with only NATIVE_FLAGS, each with an allowed value."""
    if argv[:2] != ["r1stack", "serve"]:
        raise ValueError(f"not an `r1stack serve` command: {argv[:2]}")
    rest = argv[2:]
    if len(rest) % 2:
        raise ValueError("every flag takes one value")
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        if flag not in NATIVE_FLAGS:
            raise ValueError(f"`r1stack serve` has no flag {flag}")
        allowed = NATIVE_FLAGS[flag]
        if allowed and value not in allowed:
            raise ValueError(f"{flag} {value!r} is not one of {allowed}")
        if (
            flag in ("--port", "--max-model-len", "--kv-cache-bytes", "--max-num-seqs")
            and not value.isdigit()
        ):
            raise ValueError(f"{flag} needs a whole number, got {value!r}")


def vllm_command(p: Plan, host: str = "0.0.0.0", port: int = 8000) -> Command:
    if p.verdict == NO_FIT:
        return Command(None, "the plan does not fit this hardware")
    if p.cluster.is_cpu:
        return Command(None, "the vLLM plan is for GPUs; on CPU use the native plan")
    lay = p.layout
    max_len, seqs = serving_shape(p)
    notes: list[str] = []
    model = p.model.hf_repo or p.model.name
    argv = ["vllm", "serve"]
    if p.quant == "gguf-q4_k_m":
        argv.append(f"/models/{p.model.name}-Q4_K_M.gguf")
        notes.append("vLLM's GGUF support is experimental and single-file: merge split GGUFs first")
    else:
        argv.append(model)
    argv += [
        "--served-model-name",
        p.model.name,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(lay.tp),
        "--pipeline-parallel-size",
        str(lay.pp),
        "--max-model-len",
        str(max_len),
        "--max-num-seqs",
        str(seqs),
        "--gpu-memory-utilization",
        f"{p.usable_per_device / p.cluster.device.memory_bytes:.2f}",
        "--dtype",
        "float16" if p.kv_dtype == "float16" else "bfloat16",
    ]
    quant_flag = {"fp8": "fp8", "awq": "awq", "gguf-q4_k_m": "gguf"}.get(p.quant)
    if quant_flag:
        argv += ["--quantization", quant_flag]
    if p.quant == "gguf-q4_k_m":
        argv += ["--tokenizer", model]
    if p.quant == "awq":
        notes.append(f"--quantization awq needs an AWQ checkpoint of {model} (4-bit, group 128)")
    if p.quant in ("int8", "int4"):
        notes.append(
            f"{p.quant}: serve a pre-quantized W8A16/W4A16 checkpoint (compressed-tensors, e.g. made with "
            "llm-compressor); vLLM reads its quantization from config.json, so no flag is passed"
        )
    if p.quant == "bf16" and p.model.native_quant == "fp8":
        notes.append(f"bf16 needs {model} converted to BF16 first (DeepSeek-V3's inference/fp8_cast_bf16.py)")
    if lay.ep > 1:
        argv.append("--enable-expert-parallel")
    if lay.replicas > 1 and lay.pp == 1 and p.cluster.nodes == 1:
        argv += ["--data-parallel-size", str(lay.replicas)]
    if p.cluster.nodes > 1:
        argv += ["--distributed-executor-backend", "ray"]
    if "deepseek-r1" in p.model.name:
        argv += ["--reasoning-parser", "deepseek_r1"]
    return Command(argv, notes=tuple(notes))
