"""Checks every generated launch file by parsing it: `bash -n` for scripts, YAML plus structure for manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml


class LaunchCheckError(Exception):
    """A generated file does not parse or is not shaped as its tool expects."""


def check_shell(path: Path) -> None:
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LaunchCheckError(f"{path.name}: bash -n failed: {r.stderr.strip()}")


def load_yaml(path: Path) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        raise LaunchCheckError(f"{path.name}: not valid YAML: {e}") from None


def check_compose(doc: dict) -> None:
    services = doc.get("services") or {}
    for need in ("server", "search-proxy", "milvus"):
        if need not in services:
            raise LaunchCheckError(f"compose file lacks service {need!r}")
    declared = set(doc.get("volumes") or {})
    for name, svc in services.items():
        if not svc.get("image"):
            raise LaunchCheckError(f"service {name!r} has no image")
        for dep in svc.get("depends_on", []):
            if dep not in services:
                raise LaunchCheckError(f"service {name!r} depends on unknown service {dep!r}")
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if not src.startswith(("/", ".")) and src not in declared:
                raise LaunchCheckError(f"service {name!r} mounts undeclared volume {src!r}")
        if not isinstance(svc.get("command", []), list):
            raise LaunchCheckError(f"service {name!r}: command must be a list (exec form)")


def check_kubernetes(docs: list[dict]) -> None:
    workloads: list[dict[str, str]] = []
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                raise LaunchCheckError(f"manifest lacks {key}: {str(d)[:80]}")
        if not d["metadata"].get("name"):
            raise LaunchCheckError(f"{d['kind']} has no metadata.name")
        if d["kind"] in ("Deployment", "StatefulSet"):
            sel = d["spec"]["selector"]["matchLabels"]
            labels = d["spec"]["template"]["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in sel.items()):
                raise LaunchCheckError(
                    f"{d['kind']} {d['metadata']['name']}: selector does not match its pods"
                )
            for c in d["spec"]["template"]["spec"]["containers"]:
                if not c.get("name") or not c.get("image"):
                    raise LaunchCheckError(f"{d['metadata']['name']}: a container lacks name or image")
            workloads.append(labels)
    for d in docs:
        if d["kind"] == "Service":
            sel = d["spec"]["selector"]
            if not any(all(w.get(k) == v for k, v in sel.items()) for w in workloads):
                raise LaunchCheckError(f"Service {d['metadata']['name']} selects no pods")
