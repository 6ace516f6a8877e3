"""Multi-node plans with r1stack as the gateway: the compose and Kubernetes manifests parse (pyyaml), and their
wiring holds: the gateway's --upstream URLs are exactly the replicas' addresses and ports, one per replica of
the plan's layout, and the gateway points at the search proxy and the Milvus server the files define."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from r1stack.deploy.launch import LaunchCheckError, vllm_command, write_launch_plans
from r1stack.deploy.launch.gateway import (
    REPLICA_PORT,
    check_gateway_compose,
    check_gateway_kubernetes,
    compose,
    kubernetes,
)
from r1stack.deploy.planner import PlanRequest, plan


def _flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


@pytest.fixture(scope="module")
def replicated():
    """70B fp8 on two 8-GPU nodes: TP 2, one node per replica group, 8 replicas."""
    p = plan(PlanRequest("deepseek-r1-distill-llama-70b", "8xH100", nodes=2, quant="fp8"))
    assert p.layout.pp == 1 and p.layout.tp == 2 and p.layout.replicas == 8
    return p


@pytest.fixture(scope="module")
def spanning():
    """Full R1 on two 8xA100 nodes: each replica spans both nodes (PP 2)."""
    p = plan(PlanRequest("deepseek-r1", "8xA100-80G", nodes=2))
    assert p.layout.pp == 2 and p.layout.replicas == 1
    return p


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_compose_gateway_lists_every_replica_on_its_port(replicated, engine):
    doc = yaml.safe_load(compose(replicated, vllm_command(replicated), engine))
    services = doc["services"]
    gw = services["gateway"]["command"]
    assert gw[:2] == ["r1stack", "serve"] and _flag(gw, "--served-model-name") == [replicated.model.name]
    ups = _flag(gw, "--upstream")
    reps = sorted((n for n in services if n.startswith(f"{engine}-")), key=lambda n: int(n.split("-")[1]))
    assert len(reps) == 8 == len(ups)
    gpus_seen: dict[str, set[str]] = {}
    for i, name in enumerate(reps):
        svc = services[name]
        port = REPLICA_PORT + i
        assert _flag(svc["command"], "--port") == [str(port)]
        assert svc["ports"] == [f"{port}:{port}"]
        assert ups[i] == f"http://${{{engine.upper()}_{i}_HOST:-{name}}}:{port}/v1"
        ids = svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        assert len(ids) == 2  # TP 2
        node = svc["labels"]["r1stack.node"]
        assert not gpus_seen.setdefault(node, set()) & set(ids), "two replicas on one GPU"
        gpus_seen[node] |= set(ids)
    assert {n: len(g) for n, g in gpus_seen.items()} == {"0": 8, "1": 8}
    if engine == "vllm":
        cmd = services["vllm-0"]["command"]
        assert cmd[:2] == ["vllm", "serve"] and _flag(cmd, "--tensor-parallel-size") == ["2"]
        assert "--data-parallel-size" not in cmd and "--distributed-executor-backend" not in cmd
    else:
        assert _flag(services["sglang-0"]["command"], "--tp-size") == ["2"]
    env = services["gateway"]["environment"]
    assert env["R1STACK_WEBSEARCH__PROXY_ADDRESS"] == "search-proxy:50551"
    assert "0.0.0.0:50551" in services["search-proxy"]["command"]
    assert env["R1STACK_KB__MILVUS_URI"] == "http://milvus:19530" and env["R1STACK_KB__STORE"] == "milvus"
    assert "19530" in services["milvus"]["expose"]
    check_gateway_compose(doc)


def test_compose_check_catches_a_miswired_gateway(replicated):
    doc = yaml.safe_load(compose(replicated, vllm_command(replicated)))
    gw = doc["services"]["gateway"]["command"]
    gw[gw.index("--upstream") + 1] = "http://vllm-0:9999/v1"
    with pytest.raises(LaunchCheckError, match="vllm-0"):
        check_gateway_compose(doc)
    doc = yaml.safe_load(compose(replicated, vllm_command(replicated)))
    doc["services"]["gateway"]["environment"]["R1STACK_KB__MILVUS_URI"] = "http://localhost:19530"
    with pytest.raises(LaunchCheckError, match="Milvus"):
        check_gateway_compose(doc)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_kubernetes_statefulset_replicas_behind_a_headless_service(replicated, engine):
    docs = list(yaml.safe_load_all(kubernetes(replicated, vllm_command(replicated), engine)))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("StatefulSet", engine),
        ("Service", engine),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
    } <= kinds
    assert {("Deployment", "search-proxy"), ("StatefulSet", "milvus"), ("Service", "milvus")} <= kinds
    sts = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == engine)
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == engine)
    assert sts["spec"]["replicas"] == 8 and sts["spec"]["serviceName"] == engine
    assert (
        svc["spec"]["clusterIP"] == "None"
        and svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    )
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert (
        _flag(c["args"], "--port") == [str(REPLICA_PORT)] and c["ports"][0]["containerPort"] == REPLICA_PORT
    )
    gw = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    gc = gw["spec"]["template"]["spec"]["containers"][0]
    assert _flag(gc["command"], "--upstream") == [
        f"http://{engine}-{i}.{engine}.r1stack.svc.cluster.local:{REPLICA_PORT}/v1" for i in range(8)
    ]
    env = {e["name"]: e["value"] for e in gc["env"]}
    assert env["R1STACK_KB__MILVUS_URI"] == "http://milvus:19530"
    assert env["R1STACK_WEBSEARCH__PROXY_ADDRESS"] == "search-proxy:50551"
    check_gateway_kubernetes(docs)
    gc["command"][gc["command"].index("--upstream") + 1] = "http://vllm:8001/v1"  # one balanced IP: wrong
    with pytest.raises(LaunchCheckError, match="upstreams"):
        check_gateway_kubernetes(docs)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_kubernetes_leader_worker_set_when_a_replica_spans_nodes(spanning, engine):
    text = kubernetes(spanning, vllm_command(spanning), engine)
    assert "&id" not in text  # no YAML anchors: every pod template is written out
    docs = list(yaml.safe_load_all(text))
    lws = next(d for d in docs if d["kind"] == "LeaderWorkerSet")
    tpl = lws["spec"]["leaderWorkerTemplate"]
    assert (
        lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
        and lws["spec"]["replicas"] == 1
        and tpl["size"] == 2
    )
    leader = tpl["leaderTemplate"]["spec"]["containers"][0]
    worker = tpl["workerTemplate"]["spec"]["containers"][0]
    assert (
        leader["resources"]["limits"]["nvidia.com/gpu"]
        == 8
        == worker["resources"]["limits"]["nvidia.com/gpu"]
    )
    if engine == "vllm":
        assert (
            "ray start --head" in leader["command"][2]
            and "--pipeline-parallel-size 2" in leader["command"][2]
        )
        assert "ray start --address=$(LWS_LEADER_ADDRESS)" in worker["command"][2]
    else:
        assert (
            "--node-rank 0" in leader["command"][2]
            and "--node-rank $(LWS_WORKER_INDEX)" in worker["command"][2]
        )
    gw = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    ups = _flag(gw["spec"]["template"]["spec"]["containers"][0]["command"], "--upstream")
    assert ups == [f"http://{engine}-0.{engine}.r1stack.svc.cluster.local:{REPLICA_PORT}/v1"]
    check_gateway_kubernetes(docs)
    with pytest.raises(ValueError, match="spans nodes"):
        compose(spanning, vllm_command(spanning), engine)


def test_write_launch_plans_adds_gateway_files_to_multi_node_plans_only(replicated, spanning, tmp_path):
    names = {f.path.name for f in write_launch_plans(replicated, tmp_path / "a")}
    assert {f"gateway-{e}-{k}.yaml" for e in ("vllm", "sglang") for k in ("compose", "kubernetes")} <= names
    names = {f.path.name for f in write_launch_plans(spanning, tmp_path / "b")}
    assert {"gateway-vllm-kubernetes.yaml", "gateway-sglang-kubernetes.yaml"} <= names
    assert not any("compose" in n for n in names)
    assert "LeaderWorkerSet" in (tmp_path / "b" / "README.txt").read_text()
    one = plan(PlanRequest("deepseek-r1-distill-llama-70b", "8xH100", quant="fp8"))
    assert not any(f.path.name.startswith("gateway") for f in write_launch_plans(one, tmp_path / "c"))


def _docker_compose_works() -> bool:
    if not shutil.which("docker"):
        return False
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.skipif(not _docker_compose_works(), reason="docker compose is not installed here")
def test_docker_compose_config_accepts_the_gateway_file(replicated, tmp_path):
    path = tmp_path / "gateway-vllm-compose.yaml"
    path.write_text(compose(replicated, vllm_command(replicated)))
    r = subprocess.run(
        ["docker", "compose", "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    import json

    cfg = json.loads(r.stdout)
    ups = _flag(cfg["services"]["gateway"]["command"], "--upstream")
    assert ups[0] == f"http://vllm-0:{REPLICA_PORT}/v1"  # the host variable's default: the service name
