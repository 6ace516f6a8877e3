"""What every benchmark shares: machine facts, a results writer, and a Rich table printer."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(os.environ.get("R1STACK_DATA_DIR", Path(__file__).resolve().parents[1] / "r1stack-data"))


def machine() -> dict:
    import torch

    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_1m": os.getloadavg()[0],  # at the end of the run: the machine may be shared
    }


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, ensure_ascii=False) + "\n")
    return path


def add_engine_mode(ap) -> None:
    """--enforce-eager / --compile for r1stack's decode step; neither: the engine's own choice (eager on CPU,
    compiled on CUDA). The parsed value is `enforce_eager` (True, False or None), as LLM(...) takes it."""
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--enforce-eager", dest="enforce_eager", action="store_const", const=True, default=None)
    mode.add_argument("--compile", dest="enforce_eager", action="store_const", const=False)


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r])
    Console().print(table)


# ---- peers: other engines in their own venvs (benchmarks/peers/setup.sh), never r1stack dependencies ---------

ROOT = Path(__file__).resolve().parents[1]
PEERS = {
    "llama.cpp": (
        ROOT / ".venv-peers" / "bin" / "python",
        ROOT / "benchmarks" / "peers" / "llamacpp_peer.py",
    ),
    "vLLM-CPU": (ROOT / ".venv-vllm" / "bin" / "python", ROOT / "benchmarks" / "peers" / "vllm_peer.py"),
}


def safetensors_copy(model: str = "smollm2-135m-instruct") -> Path:
    """The installed GGUF model as a safetensors folder (what vLLM loads), written once by transformers."""
    from r1stack.engine.store import resolve

    out = DATA_DIR / "vllm" / model
    if not (out / "model.safetensors").exists():
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = resolve(model, DATA_DIR).path
        m = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.bfloat16)
        m.save_pretrained(out, safe_serialization=True)
        AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name).save_pretrained(out)
    return out


def run_peer(name: str, job: dict, threads: int, timeout: float = 1800) -> dict:
    """Runs one peer job in the peer's venv. Returns its JSON result, or {"skipped": why} if it cannot run."""
    import subprocess

    python, script = PEERS[name]
    if not python.exists():
        return {"skipped": f"{python.parent.parent.name} is missing (bash benchmarks/peers/setup.sh)"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env.update(
        OMP_NUM_THREADS=str(threads),
        VLLM_CPU_OMP_THREADS_BIND="nobind",
        VLLM_CPU_KVCACHE_SPACE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    try:
        proc = subprocess.run(
            [str(python), str(script)],
            input=json.dumps({**job, "threads": threads}),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"{name} did not finish within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"{name} failed (exit {proc.returncode}): {tail[:200]}"}
    return json.loads(lines[-1])


def wait_compiled(llm, timeout: float = 1800) -> bool:
    """Waits for the engine's background compilation, so that a timed run measures the compiled step only."""
    step = llm.engine.runner.decode_step  # a DecodeStep when compiling; a plain layer function otherwise
    return hasattr(step, "wait") and step.wait(timeout)
