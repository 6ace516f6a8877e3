"""`r1stack quantize` behind the CLI: load a float model, optionally run the AWQ search, write the checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from r1stack.engine import store
from r1stack.engine.loader import load_model
from r1stack.engine.quant.apply import pick_group_size
from r1stack.engine.quant.awq import awq_search
from r1stack.engine.quant.checkpoint import save_quantized
from r1stack.engine.quant.loading import checkpoint_quantization
from r1stack.errors import UserError


def calibration_samples(tokenizer, text: str, num_samples: int, seq_len: int) -> list[list[int]]:
    """Consecutive windows of the calibration text's tokens (AWQ needs typical activations, not labels)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < seq_len:
        raise UserError(
            f"the calibration text has {len(ids)} tokens; give at least {seq_len} (a few pages of "
            f"text like what the model will serve)"
        )
    return [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)][:num_samples]


def quantize_checkpoint(
    model: str,
    method: str,
    out: Path,
    data_dir: Path,
    calib: Path | None = None,
    group_size: int | None = None,
    num_samples: int = 16,
    seq_len: int = 256,
    grid: int = 20,
) -> dict:
    if method not in ("int8", "int4", "awq"):
        raise UserError(f"unknown method {method!r}; use int8, int4 or awq")
    if method == "awq" and calib is None:
        raise UserError("--method awq needs calibration text: --calib FILE (plain text)")
    if calib is not None and not calib.is_file():
        raise UserError(f"calibration file {calib} does not exist")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new --out directory")
    src = store.resolve(model, data_dir)
    if checkpoint_quantization(src) != "none":
        raise UserError(f"{src.path} is already quantized; quantize its float original instead")
    loaded = load_model(src, torch.device("cpu"), torch.float32)
    m = loaded.model
    g = pick_group_size(m, group_size) if method != "int8" else 0
    summary: dict = {"model": src.name, "method": method, "group_size": g or None}
    if method == "awq":
        text = calib.read_text(encoding="utf-8", errors="replace")
        samples = calibration_samples(loaded.tokenizer, text, num_samples, seq_len)
        summary["calibration_tokens"] = sum(map(len, samples))
        summary |= awq_search(m, samples, g, grid=grid)
    summary |= save_quantized(m, loaded.tokenizer, out, method, g)
    return summary
