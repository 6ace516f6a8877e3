"""Fusing the dense and BM25 rankings: the RRF constant, and hybrid search as the fusion of the two modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1stack.config import KBSettings, Settings
from r1stack.kb import create_kb, search
from r1stack.kb.access import ADMIN
from r1stack.kb.ingest import ingest_paths
from r1stack.kb.retrieval import rrf


def _one_list_wins_against_a_tenth_place_in_both() -> list[list[str]]:
    # "a" is one list's clear first; "b" is tenth in both lists.
    fillers1 = [f"f{i}" for i in range(8)]
    fillers2 = [f"g{i}" for i in range(9)]
    return [["a", *fillers1, "b"], [*fillers2, "b"]]


def test_the_default_constant_lets_one_lists_clear_winner_stand():
    rankings = _one_list_wins_against_a_tenth_place_in_both()
    assert rrf(rankings, KBSettings().rrf_k)[0][0] == "a"
    # Cormack et al.'s k=60, made for many deep runs, lets two weak votes outweigh one strong one.
    assert rrf(rankings, 60)[0][0] == "b"


def test_rrf_scores_and_ties():
    fused = rrf([["x", "y"], ["z", "y"]], k=5)
    assert [c for c, _ in fused] == ["y", "x", "z"]
    assert fused[0][1] == pytest.approx(2 / 7)
    assert fused[1][1] == pytest.approx(fused[2][1])  # a tie keeps first-seen order: "x" before "z"


@pytest.mark.parametrize("store", ["chroma"])
@pytest.mark.parametrize("k", [1, 60])
def test_hybrid_is_the_rrf_of_the_dense_and_bm25_rankings(settings: Settings, corpus: Path, k: int):
    settings = settings.model_copy(update={"kb": settings.kb.model_copy(update={"rrf_k": k})})
    kb = create_kb(settings, "fuse")
    ingest_paths(kb, [corpus])
    n = kb.record.chunk_count()
    assert 0 < n <= 30  # the whole corpus fits one candidate pool, so each mode below ranks all of it
    for query in ("garbage collector memory of the Moon", "reference counting and ocean tides", "Jupiter"):
        dense = [h.chunk_id for h in search(kb, query, n, ADMIN, "dense")]
        bm25 = [h.chunk_id for h in search(kb, query, n, ADMIN, "bm25")]
        assert len(dense) == n
        expected = [cid for cid, _ in rrf([dense, bm25], k)][:5]
        assert [h.chunk_id for h in search(kb, query, 5, ADMIN, "hybrid")] == expected, query
