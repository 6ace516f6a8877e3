"""Build (once per machine) and load the engine's small C++ kernels with torch's cpp_extension."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("r1stack.engine")

_lock = threading.Lock()
_built: dict[str, object] = {}  # name -> module, or None after a failed build (not retried)


def build(name: str, source: str, functions: list[str], what: str):
    """The compiled module, or None when it cannot be built here (said once in the log). `what` names it there."""
    with _lock:
        if name not in _built:
            t0 = time.perf_counter()
            # The ninja that pip installed beside this interpreter, when the venv is not on PATH (make test).
            bindir = str(Path(sys.executable).parent)
            if bindir not in os.environ.get("PATH", "").split(os.pathsep):
                os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
            try:
                from torch.utils.cpp_extension import load_inline

                _built[name] = load_inline(
                    name=f"{name}_{cpu_tag()}",
                    cpp_sources=source,
                    functions=functions,
                    extra_cflags=["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno"],
                    verbose=False,
                )
                log.info("%s ready in %.1f s", what, time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - every caller keeps a PyTorch path, which is correct
                _built[name] = None
                log.warning("%s not built (%s); using PyTorch instead", what, str(e).splitlines()[0])
        return _built[name]


def cpu_tag() -> str:
    """The build uses -march=native: a home directory shared by machines with other CPUs (a cluster's NFS home)
    must not hand one machine's build to another, where it could stop on an illegal instruction."""
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        )
    except (OSError, StopIteration):
        flags = ""
    return hashlib.sha1(flags.encode()).hexdigest()[:10]
