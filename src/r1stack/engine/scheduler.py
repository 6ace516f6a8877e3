"""Scheduler: which sequences run this step, and how many tokens each (continuous batching, chunked prefill).

Running sequences go first, oldest first, so work already started finishes; waiting ones join while the token
budget, the sequence cap and free blocks allow. When blocks run out the newest running sequence is preempted: its
blocks are freed and it is recomputed later (prefix caching usually makes that cheap).
"""

from __future__ import annotations

from collections import deque

from r1stack.engine.block_manager import BlockManager
from r1stack.engine.sequence import Sequence, Status


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int):
        self.bm = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[tuple[Sequence, int]]:
        budget = self.max_num_batched_tokens
        batch: list[tuple[Sequence, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.num_tokens - seq.num_computed, budget)
            while not self.bm.ensure_slots(seq, seq.num_computed + n):
                preempted = True
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            else:
                batch.append((seq, n))
                budget -= n
                i += 1
        # New sequences join only when nothing had to be preempted: memory is the scarce thing then.
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs and not preempted:
            seq = self.waiting[0]
            self.bm.reuse_prefix(seq)
            n = min(seq.num_tokens - seq.num_computed, budget)
            if not self.bm.ensure_slots(seq, seq.num_computed + n):
                self.bm.release(seq)
                break
            self.waiting.popleft()
            seq.status = Status.RUNNING
            self.running.append(seq)
            batch.append((seq, n))
            budget -= n
        return batch

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.bm.release(seq)
        seq.status = Status.WAITING
        self.waiting.appendleft(seq)
        self.num_preemptions += 1

    def finish(self, seq: Sequence) -> None:
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.bm.release(seq)
        seq.status = Status.FINISHED
