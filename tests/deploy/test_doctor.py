"""`r1stack doctor` on this machine (a real probe), and its recommendations for described machines."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from r1stack.deploy.doctor import diagnose, machine_cluster
from r1stack.deploy.hardware import GB
from r1stack.deploy.launch.commands import check_native_argv
from r1stack.deploy.machine import INTERESTING_FLAGS, GpuFact, MachineFacts, slow_pairs


def _serve_command():
    """The registered `r1stack serve` click command, or None while it is still a placeholder."""
    import typer.main

    from r1stack.cli.main import app

    group = typer.main.get_command(app)
    ctx = group.make_context("r1stack", ["serve"], resilient_parsing=True)
    cmd = group.get_command(ctx, "serve")
    return (cmd, ctx) if cmd is not None and cmd.params else (None, None)


def test_doctor_on_this_machine_prints_a_plan_serve_accepts(cli, data_dir):
    # a low speed floor: a busy shared CPU must not turn "nothing fast enough" into a failure here
    r = cli("doctor", "--json", "--min-tokens-per-s", "0.5")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    m = d["machine"]
    assert m["cpu_model"] and m["cores_logical"] >= 1 and m["ram_total"] > 0 and m["disk_free"] > 0
    assert m["data_dir_writable"] is True and m["data_dir"] == str(data_dir)
    assert set(m["ports_free"]) == {"8000", "50551", "19530"}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # AVX-512 / AMX flags as the kernel reports them
        have = {
            f for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for f in line.split()
        }
        assert m["cpu_flags"] == [f for f in INTERESTING_FLAGS if f in have]
    rec = d["recommended"]
    assert rec and rec["usable"], d
    argv = shlex.split(rec["command"])
    check_native_argv(argv)  # only the flags `r1stack serve` has, each with an allowed value
    # by default the doctor recommends unquantized weights, which today's `r1stack serve` runs
    assert argv[argv.index("--quantization") + 1] == "none"
    if not m["gpus"]:
        assert argv[argv.index("--device") + 1] == "cpu"
        assert m["cpu_bandwidth_gbs"] and m["cpu_bandwidth_gbs"] > 0
    cmd, ctx = _serve_command()
    if cmd is None:
        pytest.skip("`r1stack serve` is not registered yet; flags checked against the agreed list only")
    cmd.make_context("serve", argv[2:], parent=ctx)  # raises if serve would refuse any flag or value


def test_doctor_human_output(cli):
    r = cli("doctor", "--min-tokens-per-s", "0.1")
    assert r.returncode == 0, r.stderr
    assert "This machine" in r.stdout and "Recommended:" in r.stdout and "r1stack serve --model" in r.stdout
    assert r.stdout.count(" no  ") >= 3  # the 671B models are ruled out, with a reason each
    assert "does not fit" in r.stdout


def _facts(gpus: list[GpuFact], ram_gb: float = 64, bw: float | None = 50.0) -> MachineFacts:
    return MachineFacts(
        cpu_model="test CPU",
        cpu_flags=["avx2", "avx512f", "avx512_bf16"],
        cores_logical=32,
        cores_physical=16,
        ram_total=int(ram_gb * GB),
        ram_available=int(ram_gb * GB),
        disk_free=500 * GB,
        gpus=gpus,
        driver_version="550.54" if gpus else None,
        data_dir="/tmp/x",
        data_dir_writable=True,
        ports={8000: True},
        cpu_bandwidth_gbs=bw,
    )


def test_cpu_server_recommendation_and_reasons():
    r = diagnose(
        _facts([], ram_gb=64, bw=50.0),
        context=4096,
        concurrency=2,
        min_tokens_per_s=5,
        installed={"smollm2-135m-instruct"},
    )
    assert r.cluster.is_cpu
    by = {v.model: v for v in r.verdicts}
    assert by["deepseek-r1"].chosen is None and "does not fit" in by["deepseek-r1"].why_not
    assert by["deepseek-r1-distill-llama-70b"].chosen is None
    assert (
        "too slow" in by["deepseek-r1-distill-qwen-32b"].why_not
        or "does not fit" in by["deepseek-r1-distill-qwen-32b"].why_not
    )
    assert r.best is not None and r.best.chosen.command.argv[:2] == ["r1stack", "serve"]
    # the best is the largest model that fits and reaches 5 tokens/s from 50 GB/s
    assert r.best.chosen.plan.decode_tps_single >= 5
    assert r.best_installed.model == "smollm2-135m-instruct"


@pytest.mark.parametrize("ram_gb,flags", [(16, []), (64, ["avx2"]), (256, ["avx512f", "avx512_bf16"])])
def test_cpu_plans_for_machines_without_gpus_parse_under_serve(ram_gb, flags):
    """Whatever machine runs the suite: the CPU plans doctor gives GPU-less servers pass `r1stack serve`'s parser."""
    facts = _facts([], ram_gb=ram_gb, bw=40.0)
    facts.cpu_flags = flags
    r = diagnose(facts, min_tokens_per_s=1, installed={"smollm2-135m-instruct"})
    assert r.cluster.is_cpu and r.best and r.best_installed
    cmd, ctx = _serve_command()
    assert cmd is not None, "`r1stack serve` is not registered"
    for v in (r.best, r.best_installed):
        argv = v.chosen.command.argv
        check_native_argv(argv)
        assert argv[argv.index("--device") + 1] == "cpu"
        cmd.make_context("serve", argv[2:], parent=ctx)  # raises if serve would refuse a flag or value


def _fake_nvidia_smi(bin_dir) -> None:
    """Two RTX 4090s on different PCIe root complexes, as `nvidia-smi` reports them."""
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = topo ]; then printf "\\tGPU0\\tGPU1\\tCPU Affinity\\n'
        'GPU0\\t X \\tSYS\\t0-15\\nGPU1\\tSYS\\t X \\t16-31\\n"; exit 0; fi\n'
        'echo "0, NVIDIA GeForce RTX 4090, 24564, 550.54.15"\n'
        'echo "1, NVIDIA GeForce RTX 4090, 24564, 550.54.15"\n'
    )
    smi.chmod(0o755)


def test_doctor_reads_gpus_driver_topology_and_nccl_env_from_nvidia_smi(tmp_path):
    _fake_nvidia_smi(tmp_path / "bin")
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "CUDA_VISIBLE_DEVICES": "",  # on a GPU host torch must not see the real GPUs
        "NCCL_SOCKET_IFNAME": "eth0",
        "NCCL_DEBUG": "INFO",
        "R1STACK_DATA_DIR": str(tmp_path / "data"),
    }
    r = subprocess.run(
        [sys.executable, "-c", "from r1stack.cli.main import main; main()", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    m = d["machine"]
    assert [(g["index"], g["name"], g["source"]) for g in m["gpus"]] == [
        (0, "NVIDIA GeForce RTX 4090", "nvidia-smi"),
        (1, "NVIDIA GeForce RTX 4090", "nvidia-smi"),
    ]
    assert m["driver_version"] == "550.54.15"
    assert m["slow_gpu_pairs"] == ["GPU0-GPU1:SYS", "GPU1-GPU0:SYS"]
    assert m["nccl_env"]["NCCL_SOCKET_IFNAME"] == "eth0" and m["nccl_env"]["NCCL_DEBUG"] == "INFO"
    assert d["device"] == "2xRTX4090"
    assert any("torch.cuda does not" in w for w in d["warnings"])
    assert any("linked only through the CPU" in w for w in d["warnings"])
    rec = d["recommended"]
    assert rec and rec["usable"] and "deepseek-r1-distill" in rec["model"]


def test_one_h200_gets_the_70b_distill_in_fp8_through_vllm():
    r = diagnose(_facts([GpuFact(0, "NVIDIA H200", 143771 * 1024 * 1024, "nvidia-smi")]))
    assert r.cluster.device.id == "H200-141G" and r.cluster.device.bandwidth_gbs == 4800
    assert r.best.model == "deepseek-r1-distill-llama-70b" and r.best.chosen.plan.quant == "fp8"
    argv = r.best.chosen.command.argv
    assert argv[:2] == ["vllm", "serve"] and argv[argv.index("--quantization") + 1] == "fp8"
    by = {v.model: v for v in r.verdicts}
    assert by["deepseek-r1"].chosen is None and "does not fit" in by["deepseek-r1"].why_not


def test_rtx3090_with_quantized_weights_runs_the_32b_natively_in_int4():
    facts = _facts([GpuFact(0, "NVIDIA GeForce RTX 3090", 24576 * 1024 * 1024, "torch.cuda")])
    plain = diagnose(facts)
    assert plain.cluster.device.id == "RTX3090"
    assert plain.best.model == "deepseek-r1-distill-qwen-14b" and plain.best.chosen.plan.quant == "fp8"
    r = diagnose(facts, quantized=True)
    assert r.best.model == "deepseek-r1-distill-qwen-32b" and r.best.chosen.plan.quant == "int4"
    argv = r.best.chosen.command.argv
    check_native_argv(argv)
    assert argv[argv.index("--device") + 1] == "cuda" and argv[argv.index("--quantization") + 1] == "int4"


def test_eight_h200_get_r1_through_vllm():
    gpus = [GpuFact(i, "NVIDIA H200", 143771 * 1024 * 1024, "torch.cuda") for i in range(8)]
    r = diagnose(_facts(gpus))
    assert r.best.model in ("deepseek-r1", "deepseek-r1-zero", "deepseek-v3")
    assert r.best.chosen.command.argv[:2] == ["vllm", "serve"]
    assert "--tensor-parallel-size" in r.best.chosen.command.argv


def test_a100_40g_is_told_apart_from_80g():
    c = machine_cluster(_facts([GpuFact(0, "NVIDIA A100-SXM4-40GB", 40 * 1024**3, "torch.cuda")]))
    assert c.device.id == "A100-40G"


def test_slow_pairs_from_topology():
    topo = (
        "\tGPU0\tGPU1\tGPU2\tCPU Affinity\n"
        "GPU0\t X \tNV4\tSYS\t0-7\n"
        "GPU1\tNV4\t X \tPHB\t0-7\n"
        "GPU2\tSYS\tPHB\t X \t8-15\n"
    )
    assert slow_pairs(topo, 3) == ["GPU0-GPU2:SYS", "GPU1-GPU2:PHB", "GPU2-GPU0:SYS", "GPU2-GPU1:PHB"]


def test_doctor_ready_now_command_starts_the_real_server(tmp_path, smollm2_data_dir):
    """The acceptance in full: the plan doctor prints on this machine starts `r1stack serve` for real."""
    installed = smollm2_data_dir
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "smollm2-135m-instruct").symlink_to(installed / "models" / "smollm2-135m-instruct")
    env = {**os.environ, "R1STACK_DATA_DIR": str(data)}
    run = [sys.executable, "-c", "from r1stack.cli.main import main; main()"]
    r = subprocess.run(
        [*run, "doctor", "--json", "--min-tokens-per-s", "0.5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    ready = json.loads(r.stdout)["ready_now"]
    assert ready and ready["model"] == "smollm2-135m-instruct"
    argv = shlex.split(ready["command"])
    check_native_argv(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen(
        [*run, *argv[1:]], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        assert health and health["status"] == "ok" and health["model"] == "smollm2-135m-instruct"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
