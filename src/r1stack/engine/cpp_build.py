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
KERNEL_MODULES = ("r1stack.engine.cpu_attention", "r1stack.engine.cpu_fused", "r1stack.engine.quant.cpu_gemv")

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
    source = "\n".join(_sources[p][0] for p in parts)
    functions = [f for p in parts for f in _sources[p][1]]
    digest = hashlib.sha1((source + cpu_flags()).encode()).hexdigest()[:12]
    try:
        from torch.utils.cpp_extension import load_inline

        ext = load_inline(
            name=f"r1stack_kernels_{digest}",
            cpp_sources=source,
            functions=functions,
            extra_cflags=["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno"],
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
