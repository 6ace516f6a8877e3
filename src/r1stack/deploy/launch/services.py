"""Service manifests for the whole stack (API server, search proxy, Milvus): docker compose and Kubernetes."""

from __future__ import annotations

from typing import Any

import yaml

from r1stack.deploy.launch.commands import Command
from r1stack.deploy.planner import Plan

IMAGE = "r1stack:latest"  # built from this repository; the files name it so an operator can retag it
VLLM_IMAGE = "vllm/vllm-openai:latest"
MILVUS_IMAGE = "milvusdb/milvus:v2.4.17"
PROXY_PORT = 50551
MILVUS_PORT = 19530
API_PORT = 8000


def _server_env() -> dict[str, str]:
    return {
        "R1STACK_DATA_DIR": "/data",
        "R1STACK_KB__STORE": "milvus",
        "R1STACK_KB__MILVUS_URI": f"http://milvus:{MILVUS_PORT}",
        "R1STACK_WEBSEARCH__PROXY_ADDRESS": f"search-proxy:{PROXY_PORT}",
    }


def _milvus_env() -> dict[str, str]:
    # Standalone Milvus with its embedded etcd and local storage: one container, no MinIO.
    return {"ETCD_USE_EMBED": "true", "ETCD_DATA_DIR": "/var/lib/milvus/etcd", "COMMON_STORAGETYPE": "local"}


def _server_command(native: Command, vllm: Command) -> tuple[str, list[str], int]:
    """(image, command, gpus) of the model server container."""
    if native.argv:
        argv = list(native.argv)
        gpus = 0 if "cpu" in argv else 1
        return IMAGE, argv, gpus
    assert vllm.argv, "a services plan needs a native or a single-node vLLM command"
    argv = list(vllm.argv)
    tp = int(argv[argv.index("--tensor-parallel-size") + 1])
    pp = int(argv[argv.index("--pipeline-parallel-size") + 1])
    return VLLM_IMAGE, argv, tp * pp


def compose(p: Plan, native: Command, vllm: Command) -> str:
    image, argv, gpus = _server_command(native, vllm)
    server: dict[str, Any] = {
        "image": image,
        "command": argv,
        "ports": [f"{API_PORT}:{API_PORT}"],
        "environment": _server_env(),
        "volumes": ["r1stack-data:/data"],
        "depends_on": ["milvus", "search-proxy"],
        "restart": "unless-stopped",
    }
    if image == VLLM_IMAGE:
        server["entrypoint"] = []
        server["ipc"] = "host"  # NCCL between the container's GPUs uses shared memory
    if gpus:
        server["deploy"] = {
            "resources": {
                "reservations": {"devices": [{"driver": "nvidia", "count": gpus, "capabilities": ["gpu"]}]}
            }
        }
    doc = {
        "name": f"r1stack-{p.model.name}".replace(".", "-"),
        "services": {
            "server": server,
            "search-proxy": {
                "image": IMAGE,
                "command": [
                    "r1stack",
                    "search-proxy",
                    "serve",
                    "--listen",
                    f"0.0.0.0:{PROXY_PORT}",
                    "--allow-client",
                    "172.16.0.0/12",
                ],
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
        },
        "volumes": {"r1stack-data": {}, "milvus-data": {}},
    }
    header = (
        f"# r1stack for {p.model.name} on {p.cluster.describe()} ({p.quant}): {p.verdict}\n"
        "# The search proxy is the only container that should reach the internet.\n"
    ) + _vllm_note(image)
    return header + yaml.safe_dump(doc, sort_keys=False)


def kubernetes(p: Plan, native: Command, vllm: Command, namespace: str = "r1stack") -> str:
    image, argv, gpus = _server_command(native, vllm)
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "r1stack-data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": _storage(p)}}},
        },
    ]
    # CPU serving holds the weights in RAM; GPU serving streams them to the device.
    host_gb = max(2, int(p.weights_gb * 1.2) + 2) if not gpus else 32
    resources: dict[str, Any] = {"requests": {"memory": f"{host_gb}Gi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": gpus}
    server_container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "command": argv[:1] if image == VLLM_IMAGE else argv,
        "ports": [{"containerPort": API_PORT, "name": "http"}],
        "env": [{"name": k, "value": v} for k, v in _server_env().items()],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "resources": resources,
        "readinessProbe": {"httpGet": {"path": "/health", "port": API_PORT}, "periodSeconds": 10},
    }
    volumes: list[dict[str, Any]] = [{"name": "data", "persistentVolumeClaim": {"claimName": "r1stack-data"}}]
    if image == VLLM_IMAGE:
        server_container["args"] = argv[1:]
        # NCCL between the pod's GPUs needs a shared-memory segment larger than the container default
        server_container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
    docs.append(deployment("server", namespace, server_container, volumes=volumes))
    docs.append(service("server", namespace, API_PORT))
    docs += search_proxy_and_milvus(namespace)
    header = (
        f"# r1stack for {p.model.name} on {p.cluster.describe()} ({p.quant}): {p.verdict}\n"
        + _vllm_note(image)
    )
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def proxy_argv(allow: str) -> list[str]:
    return ["r1stack", "search-proxy", "serve", "--listen", f"0.0.0.0:{PROXY_PORT}", "--allow-client", allow]


def search_proxy_and_milvus(namespace: str) -> list[dict]:
    """The search proxy (Deployment + Service) and Milvus (StatefulSet + Service), the same in every layout."""
    proxy = {
        "name": "search-proxy",
        "image": IMAGE,
        "command": proxy_argv("10.0.0.0/8"),
        "ports": [{"containerPort": PROXY_PORT, "name": "grpc"}],
    }
    docs = [deployment("search-proxy", namespace, proxy)]
    docs.append(service("search-proxy", namespace, PROXY_PORT))
    milvus = {
        "name": "milvus",
        "image": MILVUS_IMAGE,
        "command": ["milvus", "run", "standalone"],
        "env": [{"name": k, "value": v} for k, v in _milvus_env().items()],
        "ports": [{"containerPort": MILVUS_PORT, "name": "milvus"}],
        "volumeMounts": [{"name": "milvus-data", "mountPath": "/var/lib/milvus"}],
    }
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "milvus", "namespace": namespace, "labels": {"app": "milvus"}},
            "spec": {
                "serviceName": "milvus",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "milvus"}},
                "template": {"metadata": {"labels": {"app": "milvus"}}, "spec": {"containers": [milvus]}},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "milvus-data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "50Gi"}},
                        },
                    }
                ],
            },
        }
    )
    docs.append(service("milvus", namespace, MILVUS_PORT))
    return docs


def _vllm_note(image: str) -> str:
    if image != VLLM_IMAGE:
        return ""
    return (
        "# The model needs more than one GPU, so the server container is vLLM's OpenAI server: it serves the\n"
        "# model but not r1stack's knowledge base, web search or PII guard, which need `r1stack serve`.\n"
    )


def _storage(p: Plan) -> str:
    return f"{max(10, int(p.weights_gb * 1.1) + 10)}Gi"


def deployment(name: str, ns: str, container: dict, volumes: list | None = None) -> dict:
    spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def service(name: str, ns: str, port: int, selector: dict | None = None, headless: bool = False) -> dict:
    """A Service for `port`; the selector defaults to the pods labelled app=name."""
    spec: dict[str, Any] = {
        "selector": selector or {"app": name},
        "ports": [{"port": port, "targetPort": port}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}
