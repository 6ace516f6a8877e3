"""BlockManager: hands out fixed-size KV blocks and shares full blocks between sequences with the same prefix.

A full block is keyed by a digest of its tokens chained with the previous block's key (so it names the whole
prefix); a hit is confirmed by comparing token ids. The digest is BLAKE2b, not Python's hash(): int hashes are
predictable, so a crafted prompt could collide with another tenant's chained key and be served their cached KV
(the prefix-cache collision vLLM fixed the same way). Freed blocks keep their key and go to the back of the free
list, so a popular prefix survives until memory is actually needed (LRU).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field

from r1stack.engine.sequence import Sequence


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    key: bytes | None = None
    token_ids: tuple[int, ...] = field(default_factory=tuple)


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))
        self.by_key: dict[bytes, int] = {}
        self.prefix_caching = enable_prefix_caching
        self.prefix_queries = 0  # prompt tokens looked up
        self.prefix_hits = 0  # of those, tokens found in the cache

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    @property
    def prefix_hit_rate(self) -> float:
        """Share of looked-up prompt tokens served from the cache (0 before any lookup)."""
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0

    def _key(self, prev: bytes | None, tokens: tuple[int, ...]) -> bytes:
        h = hashlib.blake2b(prev or b"", digest_size=16)
        h.update(array("q", tokens).tobytes())
        return h.digest()

    def _take(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self.free[block_id]
        block.ref_count += 1

    def reuse_prefix(self, seq: Sequence) -> None:
        """Point a newly admitted sequence at cached blocks for its longest cached prefix."""
        # Prompt logprobs need every prompt position computed, so such requests never start from the cache.
        if not self.prefix_caching or seq.block_table or seq.params.prompt_logprobs is not None:
            return
        bs = self.block_size
        # Leave at least one token to compute: the step must produce logits for the next token.
        full = (seq.num_tokens - 1) // bs
        self.prefix_queries += seq.num_prompt_tokens
        prev = None
        for i in range(full):
            tokens = tuple(seq.tokens[i * bs : (i + 1) * bs])
            key = self._key(prev, tokens)
            block_id = self.by_key.get(key)
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            self._take(block_id)
            seq.block_table.append(block_id)
            prev = key
        seq.num_computed = len(seq.block_table) * bs
        if seq.num_cached_hit == 0:
            seq.num_cached_hit = seq.num_computed
        self.prefix_hits += min(seq.num_computed, seq.num_prompt_tokens)

    def ensure_slots(self, seq: Sequence, num_tokens: int) -> bool:
        """Give seq enough blocks for num_tokens tokens; False (and nothing changed) if memory is short."""
        need = -(-num_tokens // self.block_size) - len(seq.block_table)
        if need > len(self.free):
            return False
        for _ in range(max(need, 0)):
            block_id, _ = self.free.popitem(last=False)
            block = self.blocks[block_id]
            if block.key is not None and self.by_key.get(block.key) == block_id:
                del self.by_key[block.key]  # evict the oldest cached prefix
            block.key, block.token_ids, block.ref_count = None, (), 1
            seq.block_table.append(block_id)
        return True

    def commit(self, seq: Sequence) -> None:
        """Key every block that is now full of computed tokens, so later requests can share it."""
        if not self.prefix_caching:
            return
        bs = self.block_size
        prev = None
        for i in range(seq.num_computed // bs):
            block = self.blocks[seq.block_table[i]]
            if block.key is None:
                tokens = tuple(seq.tokens[i * bs : (i + 1) * bs])
                block.key, block.token_ids = self._key(prev, tokens), tokens
                self.by_key.setdefault(block.key, block.block_id)
            prev = block.key

    def release(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free[block_id] = None
        seq.block_table = []
        seq.num_computed = 0
