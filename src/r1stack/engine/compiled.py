"""The decode step, one layer at a time, eager or compiled with torch.compile (inductor; CPU and CUDA).

One function serves every layer (the layer's weights are arguments), so inductor compiles one layer's worth
of graph, with dynamic batch size and context length, instead of unrolling thirty layers: compile time stays
in seconds and later start-ups reuse the on-disk cache under the data directory. Inside the compiled layer the
residual add + RMSNorm, SiLU x up and the rotary embedding each become one fused loop, and decode attention
reads K/V through the block table where they lie in the cache (attention.decode_attention_inplace).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import torch

from r1stack.engine.attention import decode_attention, decode_attention_inplace
from r1stack.engine.kernels import add_rms_norm

log = logging.getLogger("r1stack.engine")


def _decode_layer(attention):
    def decode_layer(
        layer, x, residual, cos, sin, k_cache, v_cache, slot_mapping, block_tables, context_lens, block_size
    ):
        n1, n2, attn = layer.input_layernorm, layer.post_attention_layernorm, layer.self_attn
        h, residual = add_rms_norm(x, residual, n1.weight, n1.eps)
        q, k, v = attn.qkv(h, cos, sin)
        k_cache.index_copy_(0, slot_mapping, k)
        v_cache.index_copy_(0, slot_mapping, v)
        o = attention(q, k_cache, v_cache, block_tables, context_lens, block_size, attn.scale)
        h = attn.o_proj(o.reshape(-1, attn.h * attn.d))
        h, residual = add_rms_norm(h, residual, n2.weight, n2.eps)
        return layer.mlp(h), residual

    return decode_layer


eager_decode_layer = _decode_layer(decode_attention)
inplace_decode_layer = _decode_layer(decode_attention_inplace)


class DecodeStep:
    """Callable as a model's decode layer function. `compile()` compiles it at start-up on scratch inputs (a
    single sequence, a small batch and a large one: the shapes that take separate graphs), so that no request
    waits for the compiler later. If compilation fails (no C++ compiler, an op inductor cannot lower) the layer
    runs eagerly, with the same tokens, and the log says why once. (Not in a background thread: a process that
    exits while torch compiles in a daemon thread aborts.)"""

    # 1 row and >= 32 rows take graphs of their own (size-1 specialisation; the int8/int4 prefill-sized path).
    WARM_BATCHES = (1, 2, 40)

    def __init__(self, device: torch.device, cache_dir: Path | None):
        if cache_dir is not None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            # Compiled kernels live in the data directory, like everything else r1stack writes; a later start-up
            # loads them from there instead of compiling again.
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "cache" / "inductor")
        self.device = device
        # Graphs are cached per function, across engines: each model type and weight format adds three (see
        # WARM_BATCHES), so one process that loads several (a benchmark) needs more than dynamo's default 8.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.compiled = torch.compile(inplace_decode_layer, dynamic=True, fullgraph=True)
        self.ready = threading.Event()
        self.failed = False
        self.calls = 0  # layer calls that took the compiled path
        self.compile_seconds: float | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True when the compiled path is in use (compilation has finished and did not fail)."""
        self.ready.wait(timeout)
        return self.ready.is_set() and not self.failed

    def compile(self, model, block_size: int) -> None:
        """Compiles (or loads from the on-disk cache) every graph the decode step will need."""
        t0 = time.perf_counter()
        try:
            layer = model.layers[0]
            attn = layer.self_attn
            dtype = model.embed_tokens.weight.dtype
            hidden = model.embed_tokens.weight.shape[1]
            nblocks = 2 * max(self.WARM_BATCHES)
            cache = (nblocks * block_size + 1, attn.hkv, attn.d)
            # Outside inference mode, like the real cache: an inference tensor has other dispatch keys, and the
            # graphs compiled for it would not be used for the real one (dynamo would compile again mid-run).
            k_cache = torch.zeros(cache, dtype=dtype, device=self.device)
            v_cache = torch.zeros(cache, dtype=dtype, device=self.device)
            with torch.inference_mode():
                for b in self.WARM_BATCHES:
                    pos = torch.arange(b, device=self.device) + block_size
                    cos, sin = model.rotary(pos, dtype)
                    x = torch.full((b, hidden), 0.5, dtype=dtype, device=self.device)  # no RNG draw
                    tables = torch.arange(2 * b, device=self.device).view(b, 2)
                    self.compiled(
                        layer, x, torch.zeros_like(x), cos, sin, k_cache, v_cache,
                        tables[:, 1] * block_size, tables, pos + 1, block_size,
                    )  # fmt: skip
            self.compile_seconds = time.perf_counter() - t0
            log.info("decode step compiled in %.0f s", self.compile_seconds)
        except Exception as e:  # noqa: BLE001 - any compiler failure leaves the eager path, which is correct
            self.failed = True
            log.warning("compiling the decode step failed (%s); running eagerly", str(e).splitlines()[0])
        finally:
            self.ready.set()

    def __call__(self, *args):
        if self.ready.is_set() and not self.failed:
            self.calls += 1
            return self.compiled(*args)
        return eager_decode_layer(*args)


def _bucket(n: int, smallest: int = 1) -> int:
    b = smallest
    while b < n:
        b *= 2
    return b


class CudaGraphDecode:
    """On CUDA: one captured decode forward (all layers, through `layer_fn`) per bucket of batch size and block
    table width (powers of two), replayed with the step's inputs copied into static buffers. Padded rows write
    their K/V to the cache's spare last slot, which the block-table path never reads, and attend to one token.
    A bucket that fails to capture is remembered and runs without a graph; nothing is captured on CPU."""

    def __init__(self, model, kv_layers, layer_fn, kv_cache, max_batch: int, device: torch.device):
        self.model, self.kv_layers, self.layer_fn, self.device = model, kv_layers, layer_fn, device
        self.bs = kv_cache.block_size
        self.spare_slot = kv_cache.zero_slot
        self.max_batch = _bucket(max_batch)
        self.max_width = _bucket(max(2, -(-kv_cache.num_slots // self.bs)), 2)
        z = dict(dtype=torch.long, device=device)
        self.ids = torch.zeros(self.max_batch, **z)
        self.pos = torch.zeros(self.max_batch, **z)
        self.slots = torch.full((self.max_batch,), self.spare_slot, **z)
        self.tables = torch.zeros(self.max_batch, self.max_width, **z)
        self.lens = torch.ones(self.max_batch, **z)
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.broken: set[tuple[int, int]] = set()
        self.pool = None

    def _meta(self, b: int, w: int):
        from r1stack.engine.attention import AttentionMetadata

        return AttentionMetadata(
            slot_mapping=self.slots[:b],
            num_decode=b,
            decode_slots=None,
            decode_mask=None,
            prefills=[],
            block_tables=self.tables[:b, :w],
            context_lens=self.lens[:b],
            block_size=self.bs,
        )

    def _forward(self, b: int, w: int) -> torch.Tensor:
        return self.model.forward_decode(
            self.ids[:b], self.pos[:b], self.kv_layers, self._meta(b, w), self.layer_fn
        )

    def _capture(self, b: int, w: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        # Capture with every row on the spare slot: warm-up and capture then write nowhere that matters.
        self.ids.zero_(), self.pos.zero_(), self.tables.zero_(), self.lens.fill_(1)
        self.slots.fill_(self.spare_slot)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # compiles (or loads) the kernels and settles the allocator before capture
                self._forward(b, w)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self._forward(b, w)
        self.pool = graph.pool()
        return graph, out

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, meta) -> torch.Tensor | None:
        """The decode batch's final hidden states [B, hidden], or None when it has no bucket (run it plainly)."""
        if not self.layer_fn.ready.is_set() or self.layer_fn.failed:
            return None  # capture only the compiled step: the eager one synchronises with the host
        n, width = ids.shape[0], meta.block_tables.shape[1]
        b, w = _bucket(n), _bucket(width, 2)
        if b > self.max_batch or w > self.max_width or (b, w) in self.broken:
            return None
        if (b, w) not in self.graphs:
            try:
                self.graphs[(b, w)] = self._capture(b, w)
            except Exception as e:  # noqa: BLE001 - a failed capture costs speed, never correctness
                self.broken.add((b, w))
                log.warning(
                    "CUDA graph capture for batch %d x %d blocks failed (%s)", b, w, str(e).splitlines()[0]
                )
                return None
        graph, out = self.graphs[(b, w)]
        self.ids[:n].copy_(ids), self.ids[n:b].zero_()
        self.pos[:n].copy_(pos), self.pos[n:b].zero_()
        self.slots[:n].copy_(meta.slot_mapping), self.slots[n:b].fill_(self.spare_slot)
        (
            self.tables[:n, :width].copy_(meta.block_tables),
            self.tables[:b, width:w].zero_(),
            self.tables[n:b].zero_(),
        )
        self.lens[:n].copy_(meta.context_lens), self.lens[n:b].fill_(1)
        graph.replay()
        return out[:n]
