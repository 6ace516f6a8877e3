#!/usr/bin/env bash
# Needs gpu-run/wheels (pip download --no-deps gguf pydantic-settings typer rich accelerate ...) and gpu-run/tokenizer
# (the default model's converted tokenizer) beside it: the device has no package index and a 64 MiB tree limit.
# One prepared device check: the engine on CUDA (correctness vs transformers + throughput benchmark).
set -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
pip install -q --no-index --no-deps gpu-run/wheels/*.whl 2>&1 | tail -2
export PYTHONPATH=$PWD/src:$PWD/benchmarks HF_HUB_OFFLINE=1 R1STACK_DATA_DIR=$PWD/gpu-run/d
timeout 200 python benchmarks/device/cuda_check.py /tmp/smol-random 2>&1 | grep -v "Converting\|Loading\|Warn" | tee $OUT/check.txt
timeout 200 python benchmarks/throughput.py --model /tmp/smol-random --device cuda --dtype bfloat16 2>&1 | grep -v "Converting\|Loading" | tee $OUT/throughput.txt
cp benchmarks/results/throughput-cuda.json $OUT/ 2>/dev/null
