"""`r1stack quantize`: write an int8, int4 or AWQ int4 checkpoint that `r1stack serve` loads."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


def quantize(
    model: str = typer.Argument(..., help="catalogue name or local path (HF directory or .gguf file)"),
    method: str = typer.Option("awq", help="int8 | int4 (round to nearest) | awq (activation-aware int4)"),
    calib: Path | None = typer.Option(None, help="plain-text calibration file (needed for awq)"),
    out: Path = typer.Option(..., help="new directory for the quantized checkpoint"),
    group_size: int | None = typer.Option(
        None, help="int4 group size 32, 64 or 128 (default: largest that fits)"
    ),
    samples: int = typer.Option(16, help="awq: calibration windows"),
    seq_len: int = typer.Option(256, help="awq: tokens per calibration window"),
    grid: int = typer.Option(20, help="awq: scale exponents tried per layer group (0, 1/grid, ...)"),
) -> None:
    """Quantize a model's linear layers and write a checkpoint (serve it with --quantization int8|awq)."""
    from r1stack.config import get_settings
    from r1stack.engine.quant.make import quantize_checkpoint

    summary = quantize_checkpoint(
        model, method, out, get_settings().data_dir, calib, group_size, samples, seq_len
    )
    for k, v in summary.items():
        err.print(f"{k}: {v}")
    served = "int8" if method == "int8" else "awq"
    err.print(f"[green]wrote[/] {out}; serve it with `r1stack serve --model {out} --quantization {served}`")
