"""The KV cache tensors, and how many blocks a memory budget buys."""

from __future__ import annotations

import logging
import math
import mmap
from pathlib import Path

import torch

from r1stack.engine.config import EngineArgs, ModelConfig
from r1stack.errors import UserError

log = logging.getLogger("r1stack.engine")


class KVCache:
    def __init__(
        self, cfg: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device
    ):
        self.num_blocks, self.block_size = num_blocks, block_size
        # The cache starts zeroed, so a masked position of a batched decode holds a finite number (old K/V or 0),
        # never uninitialised memory that could be NaN and poison its zero attention weight. One extra slot at
        # the end stays zero for readers that pad with a slot index (MLA).
        shape = (cfg.num_layers, num_blocks * block_size + 1, cfg.num_kv_heads, cfg.head_dim)
        v_shape = shape
        if cfg.mla is not None:
            # MLA caches one compressed latent plus one shared rope key per token and layer, in `k`; `v` stays
            # zero-width so that the per-layer (k, v) pairs and the byte counts below keep their meaning.
            shape = (
                cfg.num_layers,
                num_blocks * block_size + 1,
                cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim,
            )
            v_shape = (cfg.num_layers, num_blocks * block_size + 1, 0)
        self.k = _zeros(shape, dtype, device)
        self.v = _zeros(v_shape, dtype, device)

    @property
    def num_slots(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def bytes_per_token(self) -> float:
        """Measured from the allocated tensors, not from the formula."""
        return (self.k.nbytes + self.v.nbytes) / self.k.shape[1]

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    @property
    def zero_slot(self) -> int:
        return self.num_slots

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.k[i], self.v[i]) for i in range(self.k.shape[0])]


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    # An anonymous mapping is zero by the kernel's guarantee and committed page by page as blocks are used,
    # so a large budget costs neither start-up time nor resident memory until it is needed (torch.zeros would
    # write every page up front).
    n = math.prod(shape) * dtype.itemsize
    if n == 0:
        return torch.zeros(shape, dtype=dtype)
    buf = mmap.mmap(-1, n)
    return torch.frombuffer(buf, dtype=dtype).view(shape)


def free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def plan_num_blocks(cfg: ModelConfig, args: EngineArgs, dtype: torch.dtype, device: torch.device) -> int:
    budget = args.kv_cache_bytes
    if budget is None:
        if not 0 < args.kv_cache_fraction <= 0.95:
            raise UserError(f"kv_cache_fraction must be in (0, 0.95], got {args.kv_cache_fraction}")
        budget = int(free_memory_bytes(device) * args.kv_cache_fraction)
    per_block = cfg.kv_bytes_per_token(dtype) * args.block_size
    num_blocks = budget // per_block
    if num_blocks < 1:
        raise UserError(
            f"the KV cache budget ({budget} bytes) holds less than one block of {args.block_size} "
            f"tokens ({per_block} bytes); raise kv_cache_bytes or kv_cache_fraction"
        )
    return int(num_blocks)
