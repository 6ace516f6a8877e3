"""The engine's C++ kernels as one extension, built once per machine with torch's cpp_extension.

Each kernel module registers its source at import; the first use compiles them all together, because on 2 cores
most of a build is torch's headers (about 30 s), paid once rather than once per kernel. The extension's name
carries a hash of the sources and of the CPU's flags, so an edited kernel or another CPU gets a fresh build.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("r1stack.engine")

# Every module that registers a source: imported before a build so that the one extension holds them all.
KERNEL_MODULES = (
    "r1stack.engine.cpu_attention",
    "r1stack.engine.cpu_fused",
    "r1stack.engine.cpu_sample",
    "r1stack.engine.quant.cpu_gemv",
)

# Included once, before every kernel: the headers and the AVX-512 helpers the kernels share.
PRELUDE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>
#if defined(__AVX512F__) && defined(__AVX512BW__)
#define R1_AVX512 1
#include <immintrin.h>
namespace r1 {
// 16 floats from fp32 or bf16 (bf16 -> fp32 is exact: the bits shifted up)
static inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
static inline __m512 load16(const c10::BFloat16* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
// 16 floats to fp32 or bf16, rounded to nearest even as c10::BFloat16 rounds
static inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
static inline __m256i to_bf16(__m512 v) {
#ifdef __AVX512BF16__
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#else
  const __m512i b = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
#endif
}
static inline void store16(c10::BFloat16* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_bf16(v));
}
static inline __m512 round_bf16(__m512 v) {  // v as the nearest bf16, kept in fp32 (where PyTorch rounds)
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(to_bf16(v)), 16));
}
// e^x to about 1 ulp: x = n ln2 + r with ln2 split in two (Cody-Waite), e^r by its Taylor series to r^7
// (|r| <= ln2/2: error under 6e-8), times 2^n by vscalefps, which also underflows to 0 and overflows to inf.
static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.f), _mm512_max_ps(_mm512_set1_ps(-104.f), x));  // NaN stays NaN
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  for (float c : {1.f / 720.f, 1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f, 1.f, 1.f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}
}  // namespace r1
#endif
"""

_lock = threading.Lock()
_sources: dict[str, tuple[str, list[str]]] = {}
_built: list = []  # [module or None] once built (a failed build is not retried)


def register(part: str, source: str, functions: list[str]) -> None:
    """A kernel module's C++ source and the functions it exports."""
    _sources[part] = (source, functions)


def module():
    """The compiled extension, or None when it cannot be built here (said once in the log)."""
    if _built:
        return _built[0]
    for name in KERNEL_MODULES:
        importlib.import_module(name)
    with _lock:
        if not _built:
            _built.append(_build())
    return _built[0]


def disable() -> bool:
    """Turns the kernels off for this process: every caller takes its PyTorch path. False when they are already
    built here (code may hold weights packed for them, so they stay)."""
    with _lock:
        if not _built:
            _built.append(None)
            log.info("C++ kernels off: PyTorch's ops throughout")
        return _built[0] is None


def ready() -> bool:
    """True once built (no lock and no build: compiled code and hot paths ask this)."""
    return bool(_built) and _built[0] is not None


def _build():
    t0 = time.perf_counter()
    # The ninja that pip installed beside this interpreter, when the venv is not on PATH (make test).
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    parts = sorted(_sources)
    source = "\n".join([PRELUDE] + [_sources[p][0] for p in parts])
    functions = [f for p in parts for f in _sources[p][1]]
    digest = hashlib.sha1((source + cpu_flags()).encode()).hexdigest()[:12]
    try:
        from torch.utils.cpp_extension import load_inline

        ext = load_inline(
            name=f"r1stack_kernels_{digest}",
            cpp_sources=source,
            functions=functions,
            # -fopenmp: at::parallel_for is OpenMP pragmas in torch's headers; without it they compile to one thread
            extra_cflags=["-O3", "-march=native", "-fopenmp", "-fno-math-errno"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
        log.info("C++ kernels (%s) ready in %.1f s", ", ".join(parts), time.perf_counter() - t0)
        return ext
    except Exception as e:  # noqa: BLE001 - every caller keeps a PyTorch path, which is correct
        log.warning("C++ kernels not built (%s); using PyTorch instead", str(e).splitlines()[0])
        return None


def cpu_flags() -> str:
    """The build uses -march=native: a home directory shared by machines with other CPUs (a cluster's NFS home)
    must not hand one machine's build to another, where it could stop on an illegal instruction."""
    try:
        return next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return ""
