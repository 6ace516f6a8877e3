"""Every hardware profile the issue names is in the catalogue with its memory, bandwidth, bf16/fp8 support and
interconnect, and CPU-only servers are sized by their RAM."""

from __future__ import annotations

import pytest

from r1stack.deploy.hardware import GB, cpu_presets, gpu_profiles, parse_hardware

# (spec as a user writes it, memory GB, FP8 tensor cores, a word the interconnect names)
NAMED = [
    ("A100-40G", 40, False, "NVLink"),
    ("A100-80G", 80, False, "NVLink"),
    ("H100-80G", 80, True, "NVLink"),
    ("H200", 141, True, "NVLink"),
    ("RTX4090", 24, True, "PCIe"),
    ("RTX3090", 24, False, "PCIe"),
    ("L40S", 48, True, "PCIe"),
    ("MI300X", 192, True, "Infinity Fabric"),
]


@pytest.mark.parametrize("spec,memory_gb,fp8,link", NAMED, ids=[n[0] for n in NAMED])
def test_named_profiles(spec, memory_gb, fp8, link):
    dev = parse_hardware(f"8x{spec}").device
    assert dev.memory_bytes == memory_gb * GB
    assert dev.fp8 is fp8 and dev.bf16
    assert link in dev.interconnect and dev.inter_node
    assert dev.bandwidth_gbs > 500 and dev.source


def test_profiles_carry_their_sources_and_the_node_links():
    profiles = gpu_profiles()
    assert len(profiles) == len(NAMED)
    assert all(p.source for p in profiles.values())
    assert "InfiniBand" in profiles["H200-141G"].inter_node


def test_cpu_servers_are_sized_by_ram():
    assert {64, 256, 1024} <= set(cpu_presets())
    c = parse_hardware("cpu-512g")
    assert c.is_cpu and c.device.memory_bytes == 512 * GB and not c.device.fp8
    assert parse_hardware("cpu-1tb").device.memory_bytes == 1000 * GB
