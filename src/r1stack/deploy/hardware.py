"""Hardware profiles (GPUs from the catalogue, CPU-only servers by RAM) and the `8xA100-80G` spec language."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from r1stack.errors import UserError

GB = 1_000_000_000


@dataclass(frozen=True)
class Device:
    """One accelerator, or one CPU server's RAM seen as a single device."""

    id: str
    name: str
    kind: str  # "gpu" | "cpu"
    memory_bytes: int
    bandwidth_gbs: float
    bf16: bool
    fp8: bool
    fp8_weight_only: bool
    interconnect: str = ""
    interconnect_gbs: float = 0.0
    inter_node: str = ""
    vendor: str = ""
    source: str = ""

    @property
    def memory_gb(self) -> float:
        return self.memory_bytes / GB


@dataclass(frozen=True)
class Cluster:
    """`nodes` identical machines with `per_node` devices each."""

    device: Device
    per_node: int = 1
    nodes: int = 1

    @property
    def total_devices(self) -> int:
        return self.per_node * self.nodes

    @property
    def is_cpu(self) -> bool:
        return self.device.kind == "cpu"

    def describe(self) -> str:
        one = f"{self.per_node}x{self.device.id}" if not self.is_cpu else self.device.id
        return one if self.nodes == 1 else f"{self.nodes} nodes x {one}"


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    text = resources.files("r1stack.deploy").joinpath("data/hardware.json").read_text(encoding="utf-8")
    return json.loads(text)


def gpu_profiles() -> dict[str, Device]:
    out = {}
    for g in _raw()["gpus"]:
        out[g["id"]] = Device(
            id=g["id"],
            name=g["name"],
            kind="gpu",
            memory_bytes=int(g["memory_gb"] * GB),
            bandwidth_gbs=float(g["bandwidth_gbs"]),
            bf16=bool(g["bf16"]),
            fp8=bool(g["fp8"]),
            fp8_weight_only=bool(g["fp8_weight_only"]),
            interconnect=g["interconnect"],
            interconnect_gbs=float(g["interconnect_gbs"]),
            inter_node=g["inter_node"],
            vendor=g["vendor"],
            source=g["source"],
        )
    return out


def cpu_device(ram_bytes: int, bandwidth_gbs: float | None = None, name: str | None = None) -> Device:
    cpu = _raw()["cpu"]
    gb = round(ram_bytes / GB)
    return Device(
        id=f"cpu-{gb}g",
        name=name or f"CPU-only server, {gb} GB RAM",
        kind="cpu",
        memory_bytes=int(ram_bytes),
        bandwidth_gbs=float(bandwidth_gbs or cpu["default_bandwidth_gbs"]),
        bf16=True,
        fp8=False,
        fp8_weight_only=False,
        interconnect="none (single process)",
        inter_node="Ethernet",
        source=cpu["_about"],
    )


def cpu_presets() -> list[int]:
    return list(_raw()["cpu"]["presets_gb"])


def _norm(s: str) -> str:
    s = s.lower().replace("gb", "g")
    return re.sub(r"[^a-z0-9]", "", s)


_SPEC = re.compile(r"^\s*(?:(\d+)\s*[x*]\s*)?(.+?)\s*$", re.IGNORECASE)


def parse_hardware(spec: str, nodes: int = 1) -> Cluster:
    """'8xA100-80G', 'H200', '2xRTX4090', 'cpu-256g' (RAM in GB). `nodes` multiplies the whole spec."""
    if nodes < 1:
        raise UserError(f"--nodes must be at least 1, got {nodes}")
    m = _SPEC.match(spec or "")
    if not m:
        raise UserError(f"cannot read hardware {spec!r}; write it like 8xA100-80G, 1xRTX4090 or cpu-256g")
    count = int(m.group(1) or 1)
    name = m.group(2)
    if count < 1:
        raise UserError(f"hardware {spec!r} asks for {count} devices; give at least 1")
    cpu = re.fullmatch(r"cpu[-_ ]?(\d+)\s*(g|gb|t|tb)?", name.strip(), re.IGNORECASE)
    if cpu:
        size = int(cpu.group(1)) * (1000 if (cpu.group(2) or "g").lower().startswith("t") else 1)
        if count != 1:
            raise UserError("a CPU server is one device: write cpu-256g and use --nodes for several servers")
        return Cluster(cpu_device(size * GB), per_node=1, nodes=nodes)
    profiles = gpu_profiles()
    key = _norm(name)
    exact = [d for pid, d in profiles.items() if _norm(pid) == key or _norm(d.name) == key]
    loose = [d for pid, d in profiles.items() if key and (_norm(pid).startswith(key) or key in _norm(d.name))]
    found = exact or loose
    if len(found) != 1:
        known = ", ".join(profiles)
        why = "is ambiguous" if found else "is not a known device"
        raise UserError(f"hardware {name!r} {why}; use one of {known}, or cpu-<RAM GB>g (e.g. 8xA100-80G)")
    if count > 16:
        raise UserError(
            f"{count} GPUs in one node is more than any server holds; use --nodes for more machines"
        )
    return Cluster(found[0], per_node=count, nodes=nodes)
