"""`r1stack plan` (what fits, why, and the launch files) and `r1stack doctor` (this machine's best setup)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from r1stack.config import get_settings
from r1stack.errors import UserError

_term = Console(highlight=False)
# Pipes and logs get a wide fixed width so tables of formulas do not fold into narrow columns.
out = _term if _term.is_terminal else Console(highlight=False, width=150)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("doctor")(doctor_cmd)


def plan_cmd(
    model: str = typer.Option(
        None, "--model", "-m", help="Catalogue id (e.g. deepseek-r1) or a folder with config.json."
    ),
    hardware: str = typer.Option(None, "--hardware", help="e.g. 8xA100-80G, 1xRTX4090, 8xH200, cpu-256g."),
    nodes: int = typer.Option(1, "--nodes", help="Machines of that hardware; pipeline parallel spans them."),
    context: int = typer.Option(8192, "--context", help="Tokens per sequence (prompt + output)."),
    concurrency: int = typer.Option(16, "--concurrency", help="Sequences served at once."),
    quant: str = typer.Option(
        None, "--quant", help="bf16|fp16|fp32|fp8|int8|int4|awq|gguf-q4_k_m (default: native)."
    ),
    memory_utilization: float = typer.Option(
        None, "--gpu-memory-utilization", help="Share of device memory to use."
    ),
    explain: bool = typer.Option(False, "--explain", help="Show every step of the arithmetic."),
    check_guide: bool = typer.Option(
        False, "--check-guide", help="Check the deployment guide's configurations."
    ),
    out_dir: Path = typer.Option(None, "--out", help="Where launch files go (default: DATA_DIR/plans/...)."),
    no_files: bool = typer.Option(False, "--no-files", help="Print the plan only; write no launch files."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """How much memory a model takes on given hardware, the parallel layout, a verdict, and launch files."""
    from r1stack.deploy.launch import native_command, summary, vllm_command, write_launch_plans
    from r1stack.deploy.planner import PlanRequest, plan

    if check_guide:
        _print_guide(as_json)
        return
    if not hardware:
        raise UserError("--hardware is required, e.g. --hardware 8xA100-80G (or use --check-guide)")
    settings = get_settings()
    req = PlanRequest(
        model=model or settings.model,
        hardware=hardware,
        nodes=nodes,
        context=context,
        concurrency=concurrency,
        quant=quant,
        memory_utilization=memory_utilization,
    )
    p = plan(req)
    files = []
    if not no_files:
        folder = out_dir or settings.data_dir / "plans" / _slug(
            f"{p.model.name}_{p.cluster.describe()}_{p.quant}"
        )
        files = write_launch_plans(p, Path(folder))
    if as_json:
        data = summary(p, native_command(p), vllm_command(p))
        data["files"] = [str(f.path) for f in files]
        if explain:
            data["steps"] = [{"label": s.label, "formula": s.formula, "value": s.value} for s in p.steps]
        print(json.dumps(data, indent=2))
        return
    _print_plan(p, explain)
    if p.verdict == "does-not-fit":
        from r1stack.deploy.planner import alternatives

        for a in alternatives(req):
            out.print(
                f"  would fit: {a.quant} on {a.cluster.describe()} ({a.weights_gb:,.1f} GB, {a.layout.describe()})"
            )
    native, vllm = native_command(p), vllm_command(p)
    if native.argv:
        out.print(f"\n[bold]native:[/] {native.line}", markup=True)
    if vllm.argv:
        out.print(f"[bold]vLLM:[/]   {vllm.line}", markup=True)
    for n in native.notes + vllm.notes:
        out.print(f"  note: {n}")
    if files:
        out.print(f"\nlaunch files in {files[0].path.parent}:")
        for f in files:
            out.print(f"  {f.path.name:22s} checked by {f.check}")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-").lower()


def _print_plan(p, explain: bool) -> None:
    from r1stack.deploy.hardware import GB

    colour = {"fits": "green", "fits-reduced": "yellow", "does-not-fit": "red"}[p.verdict]
    out.print(
        f"[bold]{p.model.name}[/] on [bold]{p.cluster.describe()}[/] ({p.quant}): "
        f"[bold {colour}]{p.verdict}[/]",
        markup=True,
    )
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim")
    t.add_column()
    t.add_row("weights", f"{p.weights_gb:,.1f} GB total, {p.weights_per_device / GB:,.2f} GB per device")
    t.add_row("KV cache", f"{p.kv_bytes_per_token:,} B/token ({p.kv_dtype}); {p.kv_tokens:,} tokens fit")
    t.add_row("layout", p.layout.describe())
    t.add_row(
        "capacity",
        f"{p.max_concurrency_at_context} seqs x {p.context:,} tokens, or "
        f"{p.concurrency} seqs x {p.max_context_at_concurrency:,} tokens",
    )
    t.add_row(
        "decode bound",
        f"{p.decode_tps_single:,.1f} tok/s one stream, {p.decode_tps_aggregate:,.0f} tok/s "
        "batched (memory bandwidth only)"
        if p.fits
        else "n/a (does not fit)",
    )
    out.print(t)
    for r in p.reasons:
        out.print(f"  - {r}")
    if explain:
        e = Table(title="the arithmetic", show_lines=False)
        e.add_column("step")
        e.add_column("formula")
        e.add_column("value", justify="right")
        for s in p.steps:
            e.add_row(s.label, s.formula, s.value)
        out.print(e)


def _print_guide(as_json: bool) -> None:
    from r1stack.deploy.guide import CHECK_CONCURRENCY, CHECK_CONTEXT, check_guide

    checks = check_guide()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "claim": c.claim,
                        "status": c.status,
                        "finding": c.finding,
                        "model": c.plan.model.name,
                        "hardware": c.plan.cluster.describe(),
                        "quant": c.plan.quant,
                        "weights_bytes": c.plan.weights.total_bytes,
                        "verdict": c.plan.verdict,
                        "alternatives": [
                            {
                                "hardware": a.cluster.describe(),
                                "quant": a.quant,
                                "verdict": a.verdict,
                                "weights_bytes": a.weights.total_bytes,
                            }
                            for a in c.alternatives
                        ],
                    }
                    for c in checks
                ],
                indent=2,
            )
        )
        return
    out.print(
        f"The deployment guide's configurations, re-planned for one {CHECK_CONTEXT}-token conversation "
        f"(concurrency {CHECK_CONCURRENCY}):\n"
    )
    for c in checks:
        colour = "green" if c.status == "holds" else "red"
        out.print(f"[bold]{c.claim}[/]  [bold {colour}]{c.status}[/]", markup=True)
        out.print(f"  {c.finding}")
        m = c.plan
        out.print(
            f"  as claimed: {m.quant:12s} on {m.cluster.describe():24s} {m.weights_gb:9,.1f} GB  {m.verdict}"
        )
        for a in c.alternatives:
            out.print(
                f"  instead:    {a.quant:12s} on {a.cluster.describe():24s} {a.weights_gb:9,.1f} GB  {a.verdict}"
            )
        out.print("")


def doctor_cmd(
    context: int = typer.Option(4096, "--context", help="Tokens per sequence to plan for."),
    concurrency: int = typer.Option(4, "--concurrency", help="Sequences served at once."),
    min_tokens_per_s: float = typer.Option(
        5.0, "--min-tokens-per-s", help="Slowest acceptable decode per stream."
    ),
    quantized: bool = typer.Option(
        False,
        "--quantized",
        help="Also try int8/int4 weights (quantized at load; smaller, somewhat less accurate).",
    ),
    out_dir: Path = typer.Option(
        None, "--out", help="Also write launch files for the ready-to-run plan here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Inspect this machine and recommend the best model and settings for it."""
    from r1stack.deploy.doctor import diagnose, installed_models
    from r1stack.deploy.launch import write_launch_plans
    from r1stack.deploy.machine import probe

    settings = get_settings()
    proxy_port = int(
        str(getattr(settings.websearch, "listen", "127.0.0.1:50551")).rsplit(":", 1)[-1] or 50551
    )
    facts = probe(settings.data_dir, ports=[settings.server.port, proxy_port, 19530])
    report = diagnose(
        facts,
        context=context,
        concurrency=concurrency,
        min_tokens_per_s=min_tokens_per_s,
        installed=installed_models(settings.models_dir),
        quantized=quantized,
    )
    ready = report.best_installed
    files = []
    if out_dir and ready and ready.chosen:
        files = write_launch_plans(ready.chosen.plan, out_dir)
    if as_json:
        print(json.dumps(_doctor_json(report, files), indent=2))
        return
    _print_doctor(report, files)


def _cmd(v) -> str | None:
    return v.chosen.command.line if v and v.chosen else None


def _doctor_json(r, files) -> dict:
    f = r.facts
    return {
        "machine": {
            "cpu_model": f.cpu_model,
            "cpu_flags": f.cpu_flags,
            "cores_logical": f.cores_logical,
            "cores_physical": f.cores_physical,
            "ram_total": f.ram_total,
            "ram_available": f.ram_available,
            "disk_free": f.disk_free,
            "gpus": [g.__dict__ for g in f.gpus],
            "driver_version": f.driver_version,
            "cuda_version": f.cuda_version,
            "nccl_env": f.nccl_env,
            "data_dir": f.data_dir,
            "data_dir_writable": f.data_dir_writable,
            "ports_free": {str(k): v for k, v in f.ports.items()},
            "cpu_bandwidth_gbs": f.cpu_bandwidth_gbs,
            "slow_gpu_pairs": f.slow_gpu_pairs,
        },
        "device": r.cluster.describe(),
        "recommended": _verdict_json(r.best),
        "ready_now": _verdict_json(r.best_installed),
        "installed": sorted(r.installed),
        "options": [_verdict_json(v) for v in r.verdicts],
        "warnings": r.warnings,
        "files": [str(x.path) for x in files],
    }


def _verdict_json(v) -> dict | None:
    if v is None:
        return None
    d = {"model": v.model, "params": v.params, "usable": v.chosen is not None, "why_not": v.why_not or None}
    if v.chosen:
        p = v.chosen.plan
        d.update(
            quant=p.quant,
            verdict=p.verdict,
            weights_bytes=p.weights.total_bytes,
            decode_tokens_per_s_bound=round(p.decode_tps_single, 1),
            command=v.chosen.command.line,
        )
    return d


def _print_doctor(r, files) -> None:
    from r1stack.deploy.hardware import GB

    f = r.facts
    out.print("[bold]This machine[/]", markup=True)
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim")
    t.add_column()
    t.add_row(
        "CPU",
        f"{f.cpu_model}; {f.cores_physical} cores / {f.cores_logical} threads; "
        f"flags: {', '.join(f.cpu_flags) or 'no AVX2'}",
    )
    t.add_row("RAM", f"{f.ram_total / GB:,.1f} GB total, {f.ram_available / GB:,.1f} GB available")
    bw = f"{f.cpu_bandwidth_gbs:,.1f} GB/s (measured copy)" if f.cpu_bandwidth_gbs else "not measured"
    t.add_row("memory bandwidth", bw)
    t.add_row("disk", f"{f.disk_free / GB:,.1f} GB free under {f.data_dir}")
    gpus = "; ".join(f"GPU{g.index} {g.name} {g.memory_bytes / GB:,.1f} GB" for g in f.gpus) or "none"
    t.add_row("GPUs", gpus + (f" (driver {f.driver_version}, CUDA {f.cuda_version})" if f.gpus else ""))
    t.add_row("NCCL env", ", ".join(f"{k}={v}" for k, v in f.nccl_env.items()) or "none set")
    t.add_row("data dir", f"{f.data_dir} ({'writable' if f.data_dir_writable else 'NOT writable'})")
    t.add_row("ports", ", ".join(f"{p} {'free' if ok else 'TAKEN'}" for p, ok in f.ports.items()))
    out.print(t)
    out.print(
        f"\n[bold]Options on {r.cluster.describe()}[/] (context {r.context:,}, {r.concurrency} sequences, "
        f">= {r.min_tokens_per_s:g} tokens/s per stream):",
        markup=True,
    )
    for v in sorted(r.verdicts, key=lambda v: -v.params):
        if v.chosen:
            p = v.chosen.plan
            out.print(
                f"  [green]ok[/]  {v.model:32s} {p.quant:11s} {p.weights_gb:8,.1f} GB  "
                f"<= {p.decode_tps_single:,.1f} tok/s",
                markup=True,
            )
        else:
            out.print(f"  [red]no[/]  {v.model:32s} {v.why_not}", markup=True)
    if r.best:
        note = "" if r.best.model in r.installed else f"  (not installed: r1stack pull {r.best.model})"
        out.print(f"\n[bold]Recommended:[/] {r.best.model} in {r.best.chosen.plan.quant}{note}", markup=True)
        out.print(f"  {_cmd(r.best)}")
    else:
        out.print("\n[bold red]No catalogued model runs here at the wanted speed.[/]", markup=True)
    if r.best_installed:
        out.print(f"[bold]Ready now:[/] {r.best_installed.model}", markup=True)
        out.print(f"  {_cmd(r.best_installed)}")
    for w in r.warnings:
        out.print(f"[yellow]warning:[/] {w}", markup=True)
    if files:
        out.print(f"\nlaunch files in {files[0].path.parent}")
