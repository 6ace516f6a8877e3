"""Multi-node manifests with r1stack as the gateway: N vLLM (or SGLang) replicas of the plan's layout, one
`r1stack serve --upstream ...` in front of them, the search proxy and Milvus (docker compose and Kubernetes)."""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from r1stack.deploy.launch.checks import LaunchCheckError, check_compose
from r1stack.deploy.launch.commands import Command
from r1stack.deploy.launch.multinode import RAY_PORT
from r1stack.deploy.launch.services import (
    API_PORT,
    IMAGE,
    MILVUS_IMAGE,
    MILVUS_PORT,
    PROXY_PORT,
    VLLM_IMAGE,
    _milvus_env,
    deployment,
    proxy_argv,
    search_proxy_and_milvus,
    service,
)
from r1stack.deploy.planner import Plan

SGLANG_IMAGE = "lmsysorg/sglang:latest"
REPLICA_PORT = 8001  # replica i listens on REPLICA_PORT + i, so replicas sharing a host never clash
SGLANG_DIST_PORT = 20000
ENGINES = ("vllm", "sglang")
LWS_API = "leaderworkerset.x-k8s.io/v1"


@dataclass(frozen=True)
class Replica:
    index: int
    name: str  # compose service / pod name
    port: int
    node: int  # first node the replica sits on
    gpus: list[int]  # device ids on that node (compose); one replica per node group when it spans nodes


def replicas(p: Plan, engine: str = "vllm") -> list[Replica]:
    """The plan's replicas, packed onto nodes in order: tp GPUs each, or pp whole nodes each."""
    lay, per_node = p.layout, p.cluster.per_node
    out = []
    for i in range(lay.replicas):
        if lay.pp > 1:
            node, gpus = i * lay.pp, list(range(per_node))
        else:
            per = max(1, per_node // lay.tp)
            node, slot = divmod(i, per)
            gpus = list(range(slot * lay.tp, (slot + 1) * lay.tp))
        out.append(Replica(i, f"{engine}-{i}", REPLICA_PORT + i, node, gpus))
    return out


def replica_argv(p: Plan, vllm: Command, engine: str, port: int) -> list[str]:
    """The serving command of one replica: the plan's `vllm serve`, on its own port; or SGLang's equivalent."""
    if engine == "vllm":
        argv = list(vllm.argv)
        argv[argv.index("--port") + 1] = str(port)
        # The gateway balances the replicas, so each container is one; Ray only joins the nodes of one replica.
        drop = ["--data-parallel-size"] + (["--distributed-executor-backend"] if p.layout.pp == 1 else [])
        for flag in drop:
            if flag in argv:
                i = argv.index(flag)
                del argv[i : i + 2]
        return argv
    lay = p.layout
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", p.model.hf_repo or p.model.name]
    argv += ["--served-model-name", p.model.name, "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--tp-size", str(lay.tp), "--context-length", str(p.context), "--trust-remote-code"]
    if lay.pp > 1:
        argv += ["--pp-size", str(lay.pp)]
    if p.quant == "fp8":
        argv += ["--quantization", "fp8"]
    if lay.ep > 1:
        argv += ["--ep-size", str(lay.ep)]
    if "deepseek-r1" in p.model.name:
        argv += ["--reasoning-parser", "deepseek-r1"]
    return argv


def gateway_argv(p: Plan, upstreams: list[str]) -> list[str]:
    argv = ["r1stack", "serve", "--host", "0.0.0.0", "--port", str(API_PORT)]
    for u in upstreams:
        argv += ["--upstream", u]
    return argv + ["--served-model-name", p.model.name]


def _gateway_env(milvus_host: str, proxy_host: str) -> dict[str, str]:
    return {
        "R1STACK_DATA_DIR": "/data",
        "R1STACK_KB__STORE": "milvus",
        "R1STACK_KB__MILVUS_URI": f"http://{milvus_host}:{MILVUS_PORT}",
        "R1STACK_WEBSEARCH__PROXY_ADDRESS": f"{proxy_host}:{PROXY_PORT}",
    }


# --- docker compose -------------------------------------------------------------------------------------------


def compose(p: Plan, vllm: Command, engine: str = "vllm") -> str:
    """One compose file for the whole stack. Compose runs on one host: on a cluster, start each node's
    replicas there (`docker compose up vllm-0 vllm-1`) and tell the gateway where they are (VLLM_0_HOST=...)."""
    if p.layout.pp > 1:
        raise ValueError("a replica that spans nodes cannot be a compose service; use the Kubernetes file")
    reps = replicas(p, engine)
    image = VLLM_IMAGE if engine == "vllm" else SGLANG_IMAGE
    host_var = engine.upper()
    upstreams = [f"http://${{{host_var}_{r.index}_HOST:-{r.name}}}:{r.port}/v1" for r in reps]
    services: dict[str, Any] = {
        "gateway": {
            "image": IMAGE,
            "command": gateway_argv(p, upstreams),
            "ports": [f"{API_PORT}:{API_PORT}"],
            "environment": _gateway_env("milvus", "search-proxy"),
            "volumes": ["r1stack-data:/data"],
            "depends_on": ["milvus", "search-proxy"],
            "restart": "unless-stopped",
        },
        "search-proxy": {
            "image": IMAGE,
            "command": proxy_argv("172.16.0.0/12"),
            "expose": [str(PROXY_PORT)],
            "restart": "unless-stopped",
        },
        "milvus": {
            "image": MILVUS_IMAGE,
            "command": ["milvus", "run", "standalone"],
            "environment": _milvus_env(),
            "expose": [str(MILVUS_PORT)],
            "volumes": ["milvus-data:/var/lib/milvus"],
            "security_opt": ["seccomp:unconfined"],
            "restart": "unless-stopped",
        },
    }
    for r in reps:
        services[r.name] = {
            "image": image,
            "entrypoint": [],
            "command": replica_argv(p, vllm, engine, r.port),
            # published on the node's own port so a gateway on another host reaches it
            "ports": [f"{r.port}:{r.port}"],
            "ipc": "host",  # NCCL between the container's GPUs uses shared memory
            "volumes": ["model-cache:/root/.cache/huggingface"],
            "labels": {"r1stack.node": str(r.node), "r1stack.replica": str(r.index)},
            "deploy": {
                "resources": {
                    "reservations": {
                        "devices": [
                            {
                                "driver": "nvidia",
                                "device_ids": [str(g) for g in r.gpus],
                                "capabilities": ["gpu"],
                            }
                        ]
                    }
                }
            },
            "restart": "unless-stopped",
        }
    doc = {
        "name": f"r1stack-gateway-{p.model.name}".replace(".", "-"),
        "services": services,
        "volumes": {"r1stack-data": {}, "milvus-data": {}, "model-cache": {}},
    }
    by_node: dict[int, list[str]] = {}
    for r in reps:
        by_node.setdefault(r.node, []).append(r.name)
    starts = "\n".join(
        f"#   node {n}: docker compose up -d {' '.join(names)}" for n, names in by_node.items()
    )
    header = (
        f"# r1stack gateway in front of {len(reps)} {engine} replicas of {p.model.name} "
        f"on {p.cluster.describe()} ({p.quant}; {p.layout.describe()})\n"
        "# On one host: docker compose up -d. On several, start each node's replicas there:\n"
        f"{starts}\n"
        "#   gateway host: export "
        + " ".join(f"{host_var}_{r.index}_HOST=<node {r.node} address>" for r in reps)
        + "; docker compose up -d gateway search-proxy milvus\n"
        "# The search proxy is the only container that should reach the internet.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False)


# --- Kubernetes -------------------------------------------------------------------------------------------------


def kubernetes(p: Plan, vllm: Command, engine: str = "vllm", namespace: str = "r1stack") -> str:
    """Replicas as a StatefulSet (one pod each) or, when a replica spans nodes, a LeaderWorkerSet (one leader and
    pp-1 workers each; needs the LWS controller). Both give replica i the DNS name {engine}-i.{engine}, which the
    gateway lists one by one: it balances and ejects replicas itself, so no Service may hide them behind one IP."""
    reps = replicas(p, engine)
    image = VLLM_IMAGE if engine == "vllm" else SGLANG_IMAGE
    svc = f"{engine}.{namespace}.svc.cluster.local"
    # All replicas share one port in Kubernetes (each pod has its own address).
    port = REPLICA_PORT
    upstreams = [f"http://{r.name}.{svc}:{port}/v1" for r in reps]
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "r1stack-data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
        },
    ]
    gpus = p.cluster.per_node if p.layout.pp > 1 else p.layout.tp
    argv = replica_argv(p, vllm, engine, port)
    container: dict[str, Any] = {
        "name": engine,
        "image": image,
        "ports": [{"containerPort": port, "name": "http"}],
        "resources": {"limits": {"nvidia.com/gpu": gpus}},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 10},
    }
    pod_volumes = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    labels = {"app": engine}
    if p.layout.pp == 1:
        container["command"], container["args"] = argv[:1], argv[1:]
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": engine, "namespace": namespace, "labels": labels},
                "spec": {
                    "serviceName": engine,
                    "replicas": len(reps),
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container], "volumes": pod_volumes},
                    },
                },
            }
        )
        # Headless: per-pod DNS names ({engine}-i.{engine}) instead of one balanced virtual IP.
        docs.append(service(engine, namespace, port, labels, headless=True))
    else:
        docs.append(_leader_worker_set(p, engine, namespace, container, pod_volumes, argv, len(reps)))
    gateway = {
        "name": "gateway",
        "image": IMAGE,
        "command": gateway_argv(p, upstreams),
        "ports": [{"containerPort": API_PORT, "name": "http"}],
        "env": [{"name": k, "value": v} for k, v in _gateway_env("milvus", "search-proxy").items()],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": API_PORT}, "periodSeconds": 10},
    }
    data = [{"name": "data", "persistentVolumeClaim": {"claimName": "r1stack-data"}}]
    docs.append(deployment("gateway", namespace, gateway, data))
    docs.append(service("gateway", namespace, API_PORT, {"app": "gateway"}))
    docs += search_proxy_and_milvus(namespace)
    header = (
        f"# r1stack gateway in front of {len(reps)} {engine} replicas of {p.model.name} "
        f"on {p.cluster.describe()} ({p.quant}; {p.layout.describe()})\n"
    )
    if p.layout.pp > 1:
        header += (
            "# Each replica spans nodes: install the LeaderWorkerSet controller (lws.sigs.k8s.io) first.\n"
        )
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def _leader_worker_set(
    p: Plan, engine: str, ns: str, container: dict, volumes: list, argv: list[str], n: int
) -> dict:
    """One group per replica: the leader (pod {engine}-i) serves, pp-1 workers join it. LWS names its headless
    Service after the set and hands each pod LWS_LEADER_ADDRESS, LWS_GROUP_SIZE and LWS_WORKER_INDEX."""
    pp = p.layout.pp
    # deep copies: shared sub-objects would come out of yaml.safe_dump as &anchors/*aliases
    leader, worker = copy.deepcopy(container), copy.deepcopy(container)
    if engine == "vllm":
        wait = f'until ray status 2>/dev/null | grep -Eq "/{pp * p.cluster.per_node}(\\.0)? GPU"; do sleep 5; done'
        leader["command"] = [
            "sh",
            "-c",
            f"ray start --head --port={RAY_PORT} && {wait} && exec {shlex.join(argv)}",
        ]
        worker["command"] = ["sh", "-c", f"exec ray start --address=$(LWS_LEADER_ADDRESS):{RAY_PORT} --block"]
    else:
        dist = [
            "--nnodes",
            "$(LWS_GROUP_SIZE)",
            "--dist-init-addr",
            f"$(LWS_LEADER_ADDRESS):{SGLANG_DIST_PORT}",
        ]
        leader["command"] = ["sh", "-c", shlex.join(argv + dist) + " --node-rank 0"]
        worker["command"] = ["sh", "-c", shlex.join(argv + dist) + " --node-rank $(LWS_WORKER_INDEX)"]
    worker.pop("readinessProbe", None)  # only the leader serves HTTP
    worker.pop("ports", None)
    worker["name"] = f"{engine}-worker"
    return {
        "apiVersion": LWS_API,
        "kind": "LeaderWorkerSet",
        "metadata": {"name": engine, "namespace": ns, "labels": {"app": engine}},
        "spec": {
            "replicas": n,
            "leaderWorkerTemplate": {
                "size": pp,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {
                    "metadata": {"labels": {"app": engine, "role": "leader"}},
                    "spec": {"containers": [leader], "volumes": copy.deepcopy(volumes)},
                },
                "workerTemplate": {
                    "metadata": {"labels": {"app": engine, "role": "worker"}},
                    "spec": {"containers": [worker], "volumes": copy.deepcopy(volumes)},
                },
            },
        },
    }


# --- checks -----------------------------------------------------------------------------------------------------


def _flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def check_gateway_compose(doc: dict) -> None:
    """The gateway's upstreams are exactly the replica services on their ports; proxy and Milvus are wired."""
    services = doc.get("services") or {}
    for need in ("gateway", "search-proxy", "milvus"):
        if need not in services:
            raise LaunchCheckError(f"gateway compose file lacks service {need!r}")
    # The generic checks (images, volumes, depends_on, exec-form commands) know the stack's server as "server".
    check_compose({**doc, "services": {"server": services["gateway"], **services}})
    gw = services["gateway"]
    ups = _flag_values(gw["command"], "--upstream")
    reps = {n: s for n, s in services.items() if "r1stack.replica" in (s.get("labels") or {})}
    if not ups or len(ups) != len(reps):
        raise LaunchCheckError(f"gateway lists {len(ups)} upstreams for {len(reps)} replicas")
    for name, svc in reps.items():
        port = _flag_values(svc["command"], "--port")
        want = f"{name}}}:{port[0]}/v1" if port else None
        if not any(want and u.endswith(want) for u in ups):
            raise LaunchCheckError(f"no gateway upstream points at replica {name} on its port {port}")
    env = gw.get("environment") or {}
    if env.get("R1STACK_WEBSEARCH__PROXY_ADDRESS") != f"search-proxy:{PROXY_PORT}":
        raise LaunchCheckError("gateway does not point at the search proxy")
    if env.get("R1STACK_KB__MILVUS_URI") != f"http://milvus:{MILVUS_PORT}":
        raise LaunchCheckError("gateway does not point at Milvus")


def check_gateway_kubernetes(docs: list[dict]) -> None:
    """Every upstream names a replica pod the StatefulSet/LeaderWorkerSet creates, behind its headless Service."""
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    gw = next(d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "gateway")
    ups = _flag_values(gw["spec"]["template"]["spec"]["containers"][0]["command"], "--upstream")
    sets = [
        d
        for d in by_kind.get("StatefulSet", []) + by_kind.get("LeaderWorkerSet", [])
        if d["metadata"]["name"] in ENGINES
    ]
    if len(sets) != 1:
        raise LaunchCheckError("expected one replica set (StatefulSet or LeaderWorkerSet)")
    rs = sets[0]
    name, ns, n = rs["metadata"]["name"], rs["metadata"]["namespace"], rs["spec"]["replicas"]
    if rs["kind"] == "StatefulSet":
        headless = [
            s
            for s in by_kind.get("Service", [])
            if s["metadata"]["name"] == name and s["spec"].get("clusterIP") == "None"
        ]
        if rs["spec"]["serviceName"] != name or not headless:
            raise LaunchCheckError(f"StatefulSet {name} lacks its headless Service")
        c = rs["spec"]["template"]["spec"]["containers"][0]
        port = int(_flag_values(c["args"], "--port")[0])
    else:
        c = rs["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
        port = c["ports"][0]["containerPort"]
    want = [f"http://{name}-{i}.{name}.{ns}.svc.cluster.local:{port}/v1" for i in range(n)]
    if ups != want:
        raise LaunchCheckError(f"gateway upstreams {ups} are not the replicas {want}")
