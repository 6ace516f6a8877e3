"""ModelRunner: packs a scheduled batch into flat tensors, runs the model once, returns the logits that matter."""

from __future__ import annotations

import torch

from r1stack.engine.attention import AttentionMetadata, PrefillSpan
from r1stack.engine.kv_cache import KVCache
from r1stack.engine.sequence import Sequence


class ModelRunner:
    def __init__(self, model: torch.nn.Module, kv_cache: KVCache, device: torch.device):
        self.model, self.kv, self.device = model, kv_cache, device
        self.bs = kv_cache.block_size
        self.kv_layers = kv_cache.layers()

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
            width = max(len(s.block_table) for s, _ in decodes)
            tables = torch.tensor(
                [s.block_table + [0] * (width - len(s.block_table)) for s, _ in decodes],
                dtype=torch.long,
                device=dev,
            )
            length = max(ctx)
            all_slots = (tables[:, :, None] * self.bs + torch.arange(self.bs, device=dev)).view(
                len(decodes), -1
            )
            lens = torch.tensor(ctx, device=dev)
            valid = torch.arange(length, device=dev)[None, :] < lens[:, None]
            meta.decode_slots = torch.where(valid, all_slots[:, :length], self.kv.zero_slot)
            meta.decode_mask = valid[:, None, None, :]
        row = len(decodes)
        for s, n in prefills:
            ctx_slots = None
            if s.num_computed:
                ctx_slots = torch.tensor(self._slots(s.block_table, 0, s.num_computed + n), device=dev)
            meta.prefills.append(PrefillSpan(row, row + n, s.num_computed, ctx_slots))
            row += n
        hidden = self.model(
            torch.tensor(input_ids, device=dev), torch.tensor(positions, device=dev), self.kv_layers, meta
        )
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
