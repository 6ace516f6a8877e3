"""The planner against the engine on the device this runs on: KV bytes per token and weight bytes the engine
really allocates, and single-stream decode speed against the planner's memory-bandwidth bound.

    .venv/bin/python benchmarks/deploy.py [--arch deepseek-r1-distill-qwen-1.5b] [--device cuda] [--tokens 128]

Builds the named catalogue architecture with random weights (no download), loads it in the native engine in
bf16 and fp32, prints a table and writes benchmarks/results/deploy.json. Speed is quoted as a ratio against the
bound computed in the same run. On CPU use a small --arch (smollm2-135m-instruct).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from r1stack.deploy.hardware import GB, Cluster, cpu_device, gpu_profiles
from r1stack.deploy.machine import measure_cpu_bandwidth
from r1stack.deploy.models import catalogue_entry, resolve_model
from r1stack.deploy.planner import PlanRequest, plan
from r1stack.deploy.quant import weight_size

RESULTS = Path(__file__).parent / "results" / "deploy.json"


def build(arch_id: str, folder: Path, device: str) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    cfg = {
        k: v
        for k, v in catalogue_entry(arch_id)["config"].items()
        if k not in ("architectures", "torch_dtype")
    }
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    del model
    vocab = config.vocab_size
    words = {f"w{i}": i for i in range(vocab - 2)} | {"<unk>": vocab - 2, "<eos>": vocab - 1}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(
        folder
    )


def cluster_here(device: str) -> Cluster:
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        for p in gpu_profiles().values():
            if p.id.split("-")[0].lower() in name.lower().replace(" ", ""):
                return Cluster(p)
        raise SystemExit(f"no hardware profile for {name}")
    return Cluster(cpu_device(64 * GB, measure_cpu_bandwidth()))


def allocated(device: str) -> int:
    return torch.cuda.memory_allocated() if device == "cuda" else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="deepseek-r1-distill-qwen-1.5b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    from r1stack.engine.llm import LLM
    from r1stack.engine.sampling_params import SamplingParams

    cluster = cluster_here(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(args.arch, folder, args.device)
        arch = resolve_model(str(folder))
        for dtype, scheme in (("bfloat16", "bf16"), ("float32", "fp32")):
            base = allocated(args.device)
            llm = LLM(
                model=str(folder),
                dtype=dtype,
                device=args.device,
                kv_cache_bytes=256 << 20,
                max_model_len=4096,
            )
            kv = llm.engine.kv_cache
            row = {
                "dtype": dtype,
                "kv_bytes_per_token_engine": kv.bytes_per_token,
                "kv_bytes_per_token_planner": arch.kv_bytes_per_token(dtype),
                "weights_planner": weight_size(arch, scheme).total_bytes,
            }
            if args.device == "cuda":
                row["allocated_minus_kv"] = allocated(args.device) - base - kv.k.nbytes - kv.v.nbytes
            sp = SamplingParams(max_tokens=args.tokens, ignore_eos=True, temperature=0.0)
            prompt = {"prompt_token_ids": list(range(100, 164))}
            llm.generate([prompt], sp)  # warm-up
            if args.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = llm.generate([prompt], sp)
            if args.device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            p = plan(
                PlanRequest(str(folder), cluster.device.id, quant=scheme, context=4096, concurrency=1),
                cluster,
            )
            row["decode_tokens_per_s"] = len(out[0].outputs[0].token_ids) / dt
            row["planner_bound_tokens_per_s"] = p.decode_tps_single
            rows.append(row)
            del llm, kv
            if args.device == "cuda":
                torch.cuda.empty_cache()
    t = Table(title=f"planner vs engine: {args.arch} (random weights) on {cluster.device.name}")
    for col in (
        "dtype",
        "KV B/token engine",
        "KV B/token planner",
        "weights planner GB",
        "allocated-KV GB",
        "decode tok/s",
        "bound tok/s",
        "measured/bound",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            r["dtype"],
            f"{r['kv_bytes_per_token_engine']:,.0f}",
            f"{r['kv_bytes_per_token_planner']:,}",
            f"{r['weights_planner'] / GB:.3f}",
            f"{r['allocated_minus_kv'] / GB:.3f}" if "allocated_minus_kv" in r else "-",
            f"{r['decode_tokens_per_s']:.1f}",
            f"{r['planner_bound_tokens_per_s']:.1f}",
            f"{r['decode_tokens_per_s'] / r['planner_bound_tokens_per_s']:.3f}",
        )
    Console().print(t)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "arch": args.arch,
                "device": cluster.device.name,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
