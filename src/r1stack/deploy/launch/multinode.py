"""Multi-node launch scripts: NCCL environment, GPU peer-to-peer check, Ray head and workers, then vLLM."""

from __future__ import annotations

from r1stack.deploy.launch.commands import Command
from r1stack.deploy.planner import Plan

RAY_PORT = 6379


def nccl_env(p: Plan) -> str:
    ib = "InfiniBand" in p.cluster.device.inter_node or "RoCE" in p.cluster.device.inter_node
    lines = [
        "# NCCL / Gloo settings for every node (source this file before `ray start`).",
        "# The interface that carries inter-node traffic: `ip -br addr` shows the names.",
        'export NCCL_SOCKET_IFNAME="${NCCL_SOCKET_IFNAME:-eth0}"',
        'export GLOO_SOCKET_IFNAME="${GLOO_SOCKET_IFNAME:-$NCCL_SOCKET_IFNAME}"',
        "# INFO prints the transport NCCL picked (NVLink P2P, IB, socket): check it once, then set WARN.",
        'export NCCL_DEBUG="${NCCL_DEBUG:-INFO}"',
        f'export NCCL_IB_DISABLE="${{NCCL_IB_DISABLE:-{0 if ib else 1}}}"',
        "# With InfiniBand, name the HCAs if NCCL picks the wrong ones, e.g. mlx5_0,mlx5_1:",
        '# export NCCL_IB_HCA="mlx5"',
        "# This node's address as the other nodes reach it (defaults to the first address of the host).",
        "export VLLM_HOST_IP=\"${VLLM_HOST_IP:-$(hostname -I | awk '{print $1}')}\"",
    ]
    return "\n".join(lines) + "\n"


def p2p_check_script(gpus_per_node: int) -> str:
    """Prints `nvidia-smi topo -m` and fails when two GPUs of this node talk only through the CPU (SYS/NODE)."""
    return f"""#!/usr/bin/env bash
# GPU peer-to-peer check for tensor parallelism inside one node.
# NV# = NVLink, PIX/PXB = PCIe switch (P2P works), PHB = through the CPU's PCIe host bridge,
# NODE/SYS = across PCIe host bridges or CPU sockets: all-reduce over such links is slow, and on
# GeForce cards P2P is off entirely. Run on every node before starting Ray.
set -euo pipefail
command -v nvidia-smi >/dev/null || {{ echo "nvidia-smi not found: is the NVIDIA driver installed?" >&2; exit 2; }}
want={gpus_per_node}
have=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ "$have" -lt "$want" ]; then
  echo "this node shows $have GPUs, the plan needs $want" >&2
  exit 1
fi
topo=$(nvidia-smi topo -m)
echo "$topo"
# GPU rows look like: GPU0  X  NV12 SYS ...; count cells between GPUs that cross the CPU.
slow=$(echo "$topo" | awk -v n="$want" '
  /^GPU[0-9]+/ {{
    row = $1; sub("GPU", "", row)
    for (j = 2; j < 2 + n; j++) {{
      col = j - 2
      if (col != row && ($j == "SYS" || $j == "NODE" || $j == "PHB")) print "GPU" row "-GPU" col ":" $j
    }}
  }}')
if [ -n "$slow" ]; then
  echo "GPU pairs without a direct link (P2P through the CPU):" >&2
  echo "$slow" >&2
  echo "tensor parallelism across these pairs is slow; prefer NVLink-connected GPUs or lower TP" >&2
  exit 1
fi
echo "P2P OK: every pair of the first $want GPUs is linked by NVLink or a PCIe switch"
"""


def ray_head_script(p: Plan, vllm: Command) -> str:
    total = p.cluster.total_devices
    return f"""#!/usr/bin/env bash
# Node 0 of {p.cluster.nodes}: Ray head, then vLLM once every worker has joined.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/nccl.env"
bash "$here/check_p2p.sh"
ray start --head --port={RAY_PORT} --node-ip-address="$VLLM_HOST_IP" --num-gpus={p.cluster.per_node}
echo "waiting for {total} GPUs in the Ray cluster (start ray_worker.sh on the other nodes)"
until ray status 2>/dev/null | grep -Eq "/{total}(\\.0)? GPU"; do sleep 5; done
{vllm.line}
"""


def ray_worker_script(p: Plan) -> str:
    return f"""#!/usr/bin/env bash
# Nodes 1..{p.cluster.nodes - 1}: join the Ray head. Usage: ray_worker.sh HEAD_IP
set -euo pipefail
head_ip="${{1:?usage: ray_worker.sh HEAD_IP}}"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/nccl.env"
bash "$here/check_p2p.sh"
ray start --address="$head_ip:{RAY_PORT}" --node-ip-address="$VLLM_HOST_IP" --num-gpus={p.cluster.per_node} --block
"""


def single_node_vllm_script(vllm: Command, gpus: int) -> str:
    check = 'bash "$here/check_p2p.sh"' if gpus > 1 else "# one GPU per replica: no P2P check needed"
    return f"""#!/usr/bin/env bash
# One node: check GPU peer-to-peer links, then start vLLM's OpenAI server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
{check}
exec {vllm.line}
"""


def native_script(native: Command) -> str:
    return f"""#!/usr/bin/env bash
# The native engine on this machine (one device).
set -euo pipefail
exec {native.line}
"""
