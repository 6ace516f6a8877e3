"""Launch files: written, parsed (bash -n, YAML), shaped as their tools expect, and the P2P check script run
against recorded `nvidia-smi topo -m` output."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest
import yaml

from r1stack.deploy.launch import LaunchCheckError, native_command, vllm_command, write_launch_plans
from r1stack.deploy.launch.checks import check_compose, check_kubernetes, check_shell
from r1stack.deploy.launch.commands import NATIVE_FLAGS, check_native_argv
from r1stack.deploy.planner import PlanRequest, plan


def _flags(argv: list[str]) -> dict[str, str]:
    out, i = {}, 2
    while i < len(argv):
        if argv[i].startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if nxt.startswith("--") or not nxt:
                out[argv[i]] = ""
                i += 1
            else:
                out[argv[i]] = nxt
                i += 2
        else:
            i += 1
    return out


def test_multi_node_r1_plan_files(tmp_path):
    p = plan(PlanRequest("deepseek-r1", "8xA100-80G", nodes=2))
    files = {f.path.name: f for f in write_launch_plans(p, tmp_path)}
    assert {"plan.json", "nccl.env", "check_p2p.sh", "ray_head.sh", "ray_worker.sh"} <= set(files)
    assert "docker-compose.yaml" not in files  # multi-node: Ray scripts, not compose
    env = (tmp_path / "nccl.env").read_text()
    assert "NCCL_SOCKET_IFNAME" in env and "NCCL_DEBUG" in env and "GLOO_SOCKET_IFNAME" in env
    head = (tmp_path / "ray_head.sh").read_text()
    assert "ray start --head" in head and "check_p2p.sh" in head and "/16(\\.0)? GPU" in head
    assert "ray start --address" in (tmp_path / "ray_worker.sh").read_text()
    assert "nvidia-smi topo -m" in (tmp_path / "check_p2p.sh").read_text()
    vllm = _flags(shlex.split(head.strip().splitlines()[-1]))
    assert vllm["--tensor-parallel-size"] == "8" and vllm["--pipeline-parallel-size"] == "2"
    assert vllm["--quantization"] == "fp8" and vllm["--distributed-executor-backend"] == "ray"
    assert "--enable-expert-parallel" in vllm and vllm["--max-model-len"] == "8192"
    assert vllm["--gpu-memory-utilization"] == "0.90"
    summary = json.loads((tmp_path / "plan.json").read_text())
    assert summary["verdict"] == "fits" and summary["native_command"] is None


def test_single_node_awq_plan_has_vllm_compose_and_kubernetes(tmp_path):
    p = plan(
        PlanRequest("deepseek-r1-distill-llama-70b", "1xA100-80G", quant="awq", context=8192, concurrency=8)
    )
    names = {f.path.name for f in write_launch_plans(p, tmp_path)}
    assert {"serve_vllm.sh", "serve_native.sh", "docker-compose.yaml", "kubernetes.yaml"} <= names
    compose = yaml.safe_load((tmp_path / "docker-compose.yaml").read_text())
    assert set(compose["services"]) == {"server", "search-proxy", "milvus"}
    server = compose["services"]["server"]
    assert server["command"][:2] == ["r1stack", "serve"]
    assert server["environment"]["R1STACK_KB__MILVUS_URI"] == "http://milvus:19530"
    assert server["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1
    docs = list(yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text()))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "Deployment",
        "Deployment",
        "Namespace",
        "PersistentVolumeClaim",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
    ]
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "server")
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    vllm = _flags(vllm_command(p).argv)
    assert vllm["--quantization"] == "awq" and vllm["--tensor-parallel-size"] == "1"


def test_multi_gpu_single_node_runs_vllm_in_compose(tmp_path):
    p = plan(PlanRequest("deepseek-r1-distill-llama-70b", "4xH100", context=8192, concurrency=16))
    assert p.layout.tp > 1 and native_command(p).argv is None
    write_launch_plans(p, tmp_path)
    server = yaml.safe_load((tmp_path / "docker-compose.yaml").read_text())["services"]["server"]
    assert server["image"].startswith("vllm/") and server["command"][0] == "vllm"
    assert server["deploy"]["resources"]["reservations"]["devices"][0]["count"] == p.layout.tp


def test_cpu_plan_is_a_native_serve_command_with_only_known_flags(tmp_path):
    p = plan(PlanRequest("smollm2-135m-instruct", "cpu-32g", quant="fp32", context=4096, concurrency=4))
    cmd = native_command(p)
    check_native_argv(cmd.argv)
    flags = _flags(cmd.argv)
    assert set(flags) <= set(NATIVE_FLAGS)
    assert flags["--device"] == "cpu" and flags["--dtype"] == "float32" and flags["--quantization"] == "none"
    assert int(flags["--kv-cache-bytes"]) == 4096 * 4 * p.kv_bytes_per_token
    assert vllm_command(p).argv is None
    names = {f.path.name for f in write_launch_plans(p, tmp_path)}
    assert "serve_native.sh" in names and "serve_vllm.sh" not in names


def test_native_flags_are_real_serve_options_and_the_cpu_plan_parses():
    import typer.main

    from r1stack.cli.main import app

    group = typer.main.get_command(app)
    ctx = group.make_context("r1stack", ["serve"], resilient_parsing=True)
    serve = group.get_command(ctx, "serve")
    options = {o for param in serve.params for o in param.opts}
    assert set(NATIVE_FLAGS) <= options, set(NATIVE_FLAGS) - options
    p = plan(
        PlanRequest("deepseek-r1-distill-qwen-1.5b", "cpu-64g", quant="bf16", context=4096, concurrency=2)
    )
    argv = native_command(p).argv
    parsed = serve.make_context("serve", argv[2:], parent=ctx).params
    assert parsed["device"] == "cpu" and parsed["max_model_len"] == 4096 and parsed["kv_cache_bytes"] > 0


def test_native_flag_check_rejects_foreign_flags():
    with pytest.raises(ValueError):
        check_native_argv(["r1stack", "serve", "--tensor-parallel-size", "2"])
    with pytest.raises(ValueError):
        check_native_argv(["r1stack", "serve", "--dtype", "fp8"])
    with pytest.raises(ValueError):
        check_native_argv(["vllm", "serve", "--model", "x"])


def test_checks_catch_broken_files(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nif true; then\n  echo missing fi\n")
    with pytest.raises(LaunchCheckError, match="bash -n"):
        check_shell(bad)
    with pytest.raises(LaunchCheckError, match="milvus"):
        check_compose({"services": {"server": {"image": "x"}, "search-proxy": {"image": "y"}}})
    with pytest.raises(LaunchCheckError, match="selects no pods"):
        check_kubernetes(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "s"},
                    "spec": {"selector": {"app": "nothing"}},
                }
            ]
        )


TOPO_NVLINK = """\
\tGPU0\tGPU1\tGPU2\tGPU3\tCPU Affinity\tNUMA Affinity
GPU0\t X \tNV12\tNV12\tNV12\t0-47\t0
GPU1\tNV12\t X \tNV12\tNV12\t0-47\t0
GPU2\tNV12\tNV12\t X \tNV12\t48-95\t1
GPU3\tNV12\tNV12\tNV12\t X \t48-95\t1
"""
TOPO_PCIE = TOPO_NVLINK.replace("GPU0\t X \tNV12\tNV12\tNV12", "GPU0\t X \tPIX\tSYS\tSYS").replace(
    "GPU2\tNV12\tNV12", "GPU2\tSYS\tNV12"
)


def _fake_smi(bin_dir, topo: str, gpus: int) -> None:
    bin_dir.mkdir()
    (bin_dir / "topo.txt").write_text(topo)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"""#!/usr/bin/env bash
if [ "$1" = topo ]; then cat "{bin_dir}/topo.txt"; exit 0; fi
for i in $(seq 0 {gpus - 1}); do echo "$i"; done
""")
    smi.chmod(0o755)


@pytest.mark.parametrize("topo,ok", [(TOPO_NVLINK, True), (TOPO_PCIE, False)])
def test_p2p_check_script_reads_nvidia_smi_topology(tmp_path, topo, ok):
    p = plan(PlanRequest("deepseek-r1-distill-llama-70b", "4xH100"))
    write_launch_plans(p, tmp_path / "plan")
    _fake_smi(tmp_path / "bin", topo, 4)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", str(tmp_path / "plan" / "check_p2p.sh")], capture_output=True, text=True, env=env, timeout=30
    )
    assert (r.returncode == 0) is ok, r.stderr
    if not ok:
        assert "GPU0-GPU2:SYS" in r.stderr and "GPU0-GPU1" not in r.stderr


def test_p2p_check_script_fails_when_gpus_are_missing(tmp_path):
    p = plan(PlanRequest("deepseek-r1-distill-llama-70b", "4xH100"))
    write_launch_plans(p, tmp_path / "plan")
    _fake_smi(tmp_path / "bin", TOPO_NVLINK, 2)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    r = subprocess.run(
        ["bash", str(tmp_path / "plan" / "check_p2p.sh")], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 1 and "needs 4" in r.stderr
