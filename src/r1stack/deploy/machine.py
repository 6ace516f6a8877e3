"""What the machine `r1stack doctor` runs on has: CPU and its vector/matrix flags, RAM, disk, GPUs, driver,
NCCL environment, a writable data directory, free ports, and a measured memory bandwidth. Probes never raise."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


@dataclass
class GpuFact:
    index: int
    name: str
    memory_bytes: int
    source: str  # "torch.cuda" | "nvidia-smi"


@dataclass
class MachineFacts:
    cpu_model: str
    cpu_flags: list[str]
    cores_logical: int
    cores_physical: int
    ram_total: int
    ram_available: int
    disk_free: int
    gpus: list[GpuFact] = field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = None
    nvidia_smi: bool = False
    gpu_topology: str | None = None
    slow_gpu_pairs: list[str] = field(default_factory=list)
    nccl_env: dict[str, str] = field(default_factory=dict)
    data_dir: str = ""
    data_dir_writable: bool = False
    data_dir_error: str | None = None
    ports: dict[int, bool] = field(default_factory=dict)  # port -> free
    cpu_bandwidth_gbs: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def has_bf16_cpu(self) -> bool:
        return any(f in self.cpu_flags for f in ("avx512_bf16", "amx_bf16"))


def probe(data_dir: Path, ports: list[int], measure_bandwidth: bool = True) -> MachineFacts:
    cpu_model, flags, physical = _cpu()
    total, available = _meminfo()
    facts = MachineFacts(
        cpu_model=cpu_model,
        cpu_flags=flags,
        cores_logical=os.cpu_count() or 1,
        cores_physical=physical,
        ram_total=total,
        ram_available=available,
        disk_free=_disk_free(data_dir),
        nccl_env={
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("NCCL_", "GLOO_")) or k in ("CUDA_VISIBLE_DEVICES", "VLLM_HOST_IP")
        },
        data_dir=str(data_dir),
    )
    facts.data_dir_writable, facts.data_dir_error = _writable(data_dir)
    facts.ports = {p: _port_free(p) for p in ports}
    _gpus(facts)
    if measure_bandwidth:
        facts.cpu_bandwidth_gbs = measure_cpu_bandwidth()
    return facts


def _cpu() -> tuple[str, list[str], int]:
    model, flags, phys = platform.processor() or platform.machine(), set(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "model name":
                model = val
            elif key == "flags":
                flags.update(val.split())
            elif key == "core id":
                phys.add(val)
        sockets = len(set(re.findall(r"physical id\s*:\s*(\d+)", text))) or 1
        physical = len(phys) * sockets or (os.cpu_count() or 1)
    except OSError:
        physical = os.cpu_count() or 1
    return model, [f for f in INTERESTING_FLAGS if f in flags], physical


def _meminfo() -> tuple[int, int]:
    total = available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
            elif line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    return total, available or total


def _disk_free(path: Path) -> int:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 0


def _writable(path: Path) -> tuple[bool, str | None]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True) as f:
            f.write(b"ok")
            f.flush()
        return True, None
    except OSError as e:
        return False, f"{type(e).__name__}: {e}"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _gpus(facts: MachineFacts) -> None:
    try:
        import torch

        if torch.cuda.is_available():
            facts.cuda_version = torch.version.cuda
            for i in range(torch.cuda.device_count()):
                prop = torch.cuda.get_device_properties(i)
                facts.gpus.append(GpuFact(i, prop.name, int(prop.total_memory), "torch.cuda"))
    except Exception as e:  # a broken driver must not stop the doctor
        facts.problems.append(f"torch.cuda failed: {e}")
    if not shutil.which("nvidia-smi"):
        return
    facts.nvidia_smi = True
    out = _run(
        ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits"]
    )
    if out is None:
        facts.problems.append("nvidia-smi is installed but did not answer (driver not loaded?)")
        return
    smi = []
    for line in out.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            facts.driver_version = parts[3]
            smi.append(GpuFact(int(parts[0]), parts[1], int(float(parts[2])) * 1024 * 1024, "nvidia-smi"))
    if not facts.gpus:
        facts.gpus = smi
        if smi:
            facts.problems.append(
                "nvidia-smi sees GPUs but torch.cuda does not: CUDA build of torch missing?"
            )
    if len(facts.gpus) > 1:
        topo = _run(["nvidia-smi", "topo", "-m"])
        if topo:
            facts.gpu_topology = topo
            facts.slow_gpu_pairs = slow_pairs(topo, len(facts.gpus))


def slow_pairs(topo: str, n: int) -> list[str]:
    """GPU pairs of `nvidia-smi topo -m` joined only through the CPU (PHB/NODE/SYS): no fast P2P."""
    out = []
    for line in topo.splitlines():
        cells = line.split()
        if not cells or not re.fullmatch(r"GPU\d+", cells[0]):
            continue
        row = int(cells[0][3:])
        for col, link in enumerate(cells[1 : 1 + n]):
            if col != row and link in ("SYS", "NODE", "PHB"):
                out.append(f"GPU{row}-GPU{col}:{link}")
    return out


def _run(argv: list[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def measure_cpu_bandwidth(mbytes: int = 256, repeats: int = 5) -> float | None:
    """Copy a buffer several times; each copy reads and writes it once. Best of `repeats`, in GB/s."""
    try:
        import torch

        src = torch.ones(mbytes * 1024 * 1024 // 4, dtype=torch.float32)
        dst = torch.empty_like(src)
        dst.copy_(src)  # fault the pages in before timing
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - t)
        return 2 * src.nbytes / best / 1e9
    except Exception:
        return None
