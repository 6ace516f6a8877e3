"""ModelRunner: packs a scheduled batch into flat tensors, runs the model once, returns the logits that matter."""

from __future__ import annotations

import torch

from r1stack.engine.attention import AttentionMetadata, PrefillSpan
from r1stack.engine.compiled import CudaGraphDecode, DecodeStep
from r1stack.engine.kv_cache import KVCache
from r1stack.engine.sequence import Sequence


class ModelRunner:
    def __init__(
        self,
        model: torch.nn.Module,
        kv_cache: KVCache,
        device: torch.device,
        decode_step: DecodeStep | None = None,
        max_batch: int = 64,
    ):
        self.model, self.kv, self.device = model, kv_cache, device
        self.bs = kv_cache.block_size
        self.kv_layers = kv_cache.layers()
        # Models with a decode path over block tables (Llama/Qwen2) skip the per-token slot lists MLA reads.
        self.decode_by_blocks = hasattr(model, "forward_decode")
        # Decode-only batches (most steps once requests are running) go through the compiled decode step.
        self.decode_step = decode_step if self.decode_by_blocks else None
        # On CUDA the decode step is also captured as CUDA graphs, per batch-size bucket.
        self.graphs = None
        if self.decode_step is not None and device.type == "cuda":
            self.graphs = CudaGraphDecode(model, self.kv_layers, decode_step, kv_cache, max_batch, device)

    def _slots(self, block_table: list[int], start: int, end: int) -> list[int]:
        bs = self.bs
        return [block_table[p // bs] * bs + p % bs for p in range(start, end)]

    def run(self, batch: list[tuple[Sequence, int]]) -> tuple[list[Sequence], torch.Tensor, dict]:
        """Returns (sequences that sample now, their next-token logits [S, V], prompt logits per sequence)."""
        decodes = [(s, n) for s, n in batch if n == 1]
        prefills = [(s, n) for s, n in batch if n > 1]
        input_ids, positions, slots = [], [], []
        for s, n in decodes + prefills:
            start = s.num_computed
            input_ids += s.tokens[start : start + n]
            positions += range(start, start + n)
            slots += self._slots(s.block_table, start, start + n)
        dev = self.device
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.long, device=dev),
            num_decode=len(decodes),
            decode_slots=None,
            decode_mask=None,
            prefills=[],
        )
        if decodes:
            ctx = [s.num_computed + 1 for s, _ in decodes]
            # At least two columns: a dimension of size 1 would be specialised by the compiler (a second graph).
            width = max(2, *(len(s.block_table) for s, _ in decodes))
            tables = torch.tensor(
                [s.block_table + [0] * (width - len(s.block_table)) for s, _ in decodes],
                dtype=torch.long,
                device=dev,
            )
            length = max(ctx)
            lens = torch.tensor(ctx, device=dev)
            meta.block_tables, meta.context_lens, meta.block_size = tables, lens, self.bs
            if not self.decode_by_blocks:
                valid = torch.arange(length, device=dev)[None, :] < lens[:, None]
                all_slots = (tables[:, :, None] * self.bs + torch.arange(self.bs, device=dev)).view(
                    len(decodes), -1
                )
                meta.decode_slots = torch.where(valid, all_slots[:, :length], self.kv.zero_slot)
                meta.decode_mask = valid[:, None, None, :]
        row = len(decodes)
        for s, n in prefills:
            ctx_slots = None
            if s.num_computed:
                ctx_slots = torch.tensor(self._slots(s.block_table, 0, s.num_computed + n), device=dev)
            meta.prefills.append(PrefillSpan(row, row + n, s.num_computed, ctx_slots))
            row += n
        ids_t, pos_t = torch.tensor(input_ids, device=dev), torch.tensor(positions, device=dev)
        hidden = None
        if self.graphs is not None and not prefills:
            hidden = self.graphs(ids_t, pos_t, meta)
        if hidden is None and self.decode_step is not None and not prefills:
            hidden = self.model.forward_decode(ids_t, pos_t, self.kv_layers, meta, self.decode_step)
        elif hidden is None:
            hidden = self.model(ids_t, pos_t, self.kv_layers, meta)
        # Rows whose sequence reaches its end this step produce the next token.
        sampling, rows, prompt_rows = [], [], {}
        row = 0
        for s, n in decodes + prefills:
            if s.num_computed + n == s.num_tokens:
                sampling.append(s)
                rows.append(row + n - 1)
            if s.params.prompt_logprobs is not None and s.num_computed < s.num_prompt_tokens:
                prompt_rows[s] = (row, n)
            row += n
        logits = self.model.compute_logits(hidden[rows]) if rows else hidden.new_empty(0)
        prompt_logits = {
            s: self.model.compute_logits(hidden[r : r + n]).float() for s, (r, n) in prompt_rows.items()
        }
        return sampling, logits, prompt_logits
