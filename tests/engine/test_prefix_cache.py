"""Prefix caching beyond what test_sampling_features covers: the digest chain names the whole prefix, hits are
confirmed by token ids, reference counts keep shared blocks alive, and the hit rate is what was served."""

from __future__ import annotations

from r1stack.engine.block_manager import BlockManager
from r1stack.engine.sampling_params import SamplingParams
from r1stack.engine.sequence import Sequence


def _seq(tokens: list[int], rid: str = "r") -> Sequence:
    return Sequence(rid, 0, tokens, SamplingParams(max_tokens=4))


def _admit(bm: BlockManager, s: Sequence) -> None:
    bm.reuse_prefix(s)
    assert bm.ensure_slots(s, s.num_tokens)
    s.num_computed = s.num_tokens
    bm.commit(s)


def test_same_block_after_a_different_prefix_is_not_a_hit():
    bm = BlockManager(num_blocks=16, block_size=4)
    _admit(bm, _seq([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    other = _seq([9, 9, 9, 9, 5, 6, 7, 8, 9], "b")  # second block equal, first not
    bm.reuse_prefix(other)
    assert other.num_computed == 0


def test_shared_blocks_are_reference_counted_and_hit_rate_is_reported():
    bm = BlockManager(num_blocks=16, block_size=4)
    system = list(range(100, 112))  # three full blocks
    a = _seq(system + [1, 2])
    _admit(bm, a)
    b = _seq(system + [3, 4], "b")
    bm.reuse_prefix(b)
    assert b.num_computed == 12 and b.block_table == a.block_table[:3]
    assert all(bm.blocks[i].ref_count == 2 for i in b.block_table)
    bm.release(a)
    assert all(bm.blocks[i].ref_count == 1 for i in b.block_table)  # still held by b, not freed
    assert bm.prefix_hit_rate == 12 / (14 + 14)


def test_a_tampered_block_is_confirmed_by_token_ids():
    bm = BlockManager(num_blocks=16, block_size=4)
    a = _seq([1, 2, 3, 4, 5, 6, 7, 8, 9])
    _admit(bm, a)
    bm.blocks[a.block_table[1]].token_ids = (0, 0, 0, 0)  # as if its digest had collided with other tokens
    b = _seq([1, 2, 3, 4, 5, 6, 7, 8, 10], "b")
    bm.reuse_prefix(b)
    assert b.num_computed == 4  # the first block only
