"""Write a safetensors (Hugging Face folder) copy of r1stack's default model from its GGUF, for engines that do
not read GGUF well (vLLM on CPU). transformers dequantizes the GGUF weights on load and saves the folder.

    python scripts/gguf_to_safetensors.py OUT_DIR [--data-dir r1stack-data] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data-dir", type=Path, default=Path("r1stack-data"))
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    a = ap.parse_args()
    folder = a.data_dir / "models" / a.model
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        print(f"no .gguf under {folder}: run `r1stack pull {a.model}` first", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = ggufs[0]
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name, dtype=getattr(torch, a.dtype))
    # The weights are already dequantized to plain tensors; transformers only still flags the model as
    # "gguf-quantized" and refuses to save it. Drop that flag so it saves an ordinary checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    tok.save_pretrained(a.out)
    print(f"wrote {a.out} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, {a.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
