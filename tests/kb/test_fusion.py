"""Fusing the dense and BM25 rankings (weighted RRF), the per-document cap, and hybrid search as their product."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1stack.config import KBSettings, Settings
from r1stack.kb import create_kb, open_kb, retrieve, search
from r1stack.kb.access import ADMIN
from r1stack.kb.fusion import cap_per_group
from r1stack.kb.ingest import ingest_paths
from r1stack.kb.retrieval import rrf


def _with_kb(settings: Settings, **kb_fields) -> Settings:
    return settings.model_copy(update={"kb": settings.kb.model_copy(update=kb_fields)})


def _one_list_wins_against_a_25th_place_in_both() -> list[list[str]]:
    # "a" is one list's clear first; "b" is 25th in both lists.
    fillers1 = [f"f{i}" for i in range(23)]
    fillers2 = [f"g{i}" for i in range(24)]
    return [["a", *fillers1, "b"], [*fillers2, "b"]]


def test_the_default_constant_lets_one_lists_clear_winner_stand():
    rankings = _one_list_wins_against_a_25th_place_in_both()
    assert rankings[0].index("b") == rankings[1].index("b") == 24
    assert rrf(rankings, KBSettings().rrf_k)[0][0] == "a"
    # Cormack et al.'s k=60, made for many deep runs, lets two weak votes outweigh one strong one.
    assert rrf(rankings, 60)[0][0] == "b"


def test_rrf_scores_and_ties():
    fused = rrf([["x", "y"], ["z", "y"]], k=5)
    assert [c for c, _ in fused] == ["y", "x", "z"]
    assert fused[0][1] == pytest.approx(2 / 7)
    assert fused[1][1] == pytest.approx(fused[2][1])  # a tie keeps first-seen order: "x" before "z"


def test_weights_scale_each_rankings_votes():
    fused = dict(rrf([["x", "y"], ["y", "x"]], k=5, weights=[1.5, 1.0]))
    assert fused["x"] == pytest.approx(1.5 / 6 + 1 / 7)
    assert fused["y"] == pytest.approx(1.5 / 7 + 1 / 6)
    # Equal votes tie; the heavier list breaks the tie its way.
    assert [c for c, _ in rrf([["x", "y"], ["y", "x"]], 5, [1.0, 1.5])] == ["y", "x"]
    assert [c for c, _ in rrf([["x", "y"], ["y", "x"]], 5, [1.5, 1.0])] == ["x", "y"]
    with pytest.raises(ValueError):
        rrf([["x"], ["y"]], 5, [1.0])


def test_cap_per_group_spreads_the_top_and_fills_from_what_it_held_back():
    items = ["a1", "a2", "a3", "b1", "a4", "c1", "b2"]
    group = lambda s: s[0]  # noqa: E731
    assert cap_per_group(items, 3, 1, group) == ["a1", "b1", "c1"]
    assert cap_per_group(items, 4, 2, group) == ["a1", "a2", "b1", "c1"]
    # Only three groups for five slots: the best held-back items fill the rest, in their order.
    assert cap_per_group(items, 5, 1, group) == ["a1", "b1", "c1", "a2", "a3"]
    assert cap_per_group(items, 99, 1, group) == ["a1", "b1", "c1", "a2", "a3", "a4", "b2"]
    assert cap_per_group(items, 4, 0, group) == items[:4]  # 0: no cap
    assert cap_per_group([], 3, 1, group) == []


def _long_and_short(folder: Path) -> Path:
    """One long document about the Moon (many chunks) and two short ones that also mention it."""
    folder.mkdir()
    moon = [
        f"The Moon section {i}: lunar craters, lunar maria and the Moon's orbit shape the tides."
        for i in range(40)
    ]
    (folder / "moon.txt").write_text("\n\n".join(moon), encoding="utf-8")
    (folder / "tides.txt").write_text("Ocean tides rise twice a day, pulled by the Moon.", encoding="utf-8")
    (folder / "apollo.txt").write_text("Apollo 11 landed on the Moon in July 1969.", encoding="utf-8")
    return folder


@pytest.mark.parametrize("store", ["chroma"])
def test_search_caps_chunks_per_document_unless_too_few_documents(settings: Settings, tmp_path: Path):
    kb = create_kb(_with_kb(settings, max_chunks_per_doc=0), "cap")
    ingest_paths(kb, [_long_and_short(tmp_path / "c")])
    assert kb.record.chunk_count() > 6
    query = "Moon lunar craters orbit tides"
    uncapped = search(kb, query, 3, ADMIN, "bm25")
    assert [h.document for h in uncapped] == ["c/moon.txt"] * 3  # the long document crowds the top 3

    for per_doc in (1, 2):
        capped_kb = open_kb(_with_kb(settings, max_chunks_per_doc=per_doc), "cap")
        for mode in ("bm25", "dense", "hybrid"):
            hits = search(capped_kb, query, 3, ADMIN, mode)
            docs = [h.document for h in hits]
            assert len(hits) == 3
            assert max(docs.count(d) for d in docs) <= per_doc, (per_doc, mode, docs)
            if per_doc == 1:
                assert sorted(docs) == ["c/apollo.txt", "c/moon.txt", "c/tides.txt"]
        # More slots than documents: the cap never shortens the answer.
        hits = search(capped_kb, query, 6, ADMIN, "bm25")
        assert len(hits) == 6 and len({h.chunk_id for h in hits}) == 6
        assert {h.document for h in hits[: 3 * per_doc]} == {"c/apollo.txt", "c/moon.txt", "c/tides.txt"}

    # The chat pipeline's retrieve() keeps the cap across knowledge bases too.
    capped = _with_kb(settings, max_chunks_per_doc=1)
    hits = retrieve(capped, ["cap"], query, top_k=3)
    assert sorted(h.document for h in hits) == ["c/apollo.txt", "c/moon.txt", "c/tides.txt"]


@pytest.mark.parametrize("store", ["chroma"])
@pytest.mark.parametrize(("k", "weight", "per_doc"), [(1, 1.0, 0), (60, 1.0, 0), (10, 1.25, 1), (5, 0.5, 2)])
def test_hybrid_is_the_capped_weighted_rrf_of_the_dense_and_bm25_rankings(
    settings: Settings, corpus: Path, k: int, weight: float, per_doc: int
):
    plain = _with_kb(settings, rrf_k=k, rrf_dense_weight=weight, max_chunks_per_doc=0)
    kb = create_kb(plain, "fuse")
    ingest_paths(kb, [corpus])
    n = kb.record.chunk_count()
    assert 0 < n <= 30  # the whole corpus fits one candidate pool, so each mode below ranks all of it
    hybrid_kb = open_kb(_with_kb(plain, max_chunks_per_doc=per_doc), "fuse")
    for query in ("garbage collector memory of the Moon", "reference counting and ocean tides", "Jupiter"):
        dense = search(kb, query, n, ADMIN, "dense")
        bm25 = search(kb, query, n, ADMIN, "bm25")
        assert len(dense) == n
        doc_of = {h.chunk_id: h.document for h in dense}
        fused = [
            cid for cid, _ in rrf([[h.chunk_id for h in dense], [h.chunk_id for h in bm25]], k, [weight, 1])
        ]
        expected = cap_per_group(fused, 5, per_doc, doc_of.__getitem__)
        assert [h.chunk_id for h in search(hybrid_kb, query, 5, ADMIN, "hybrid")] == expected, query
