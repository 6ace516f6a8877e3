"""Ingest, search and access control on a real Chroma and a real Milvus Lite on disk (each test runs on both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1stack.config import Settings
from r1stack.errors import NotFoundError, UserError
from r1stack.kb import create_kb, format_context, open_kb, retrieve, search
from r1stack.kb.access import ADMIN, Access, access_for_key
from r1stack.kb.ingest import ingest_paths
from r1stack.kb.knowledge_base import forget


def _docs(hits) -> list[str]:
    return [h.document for h in hits]


def test_ingest_is_idempotent_and_replaces_changed_files(settings: Settings, corpus: Path):
    kb = create_kb(settings, "docs")
    report = ingest_paths(kb, [corpus])
    assert report.count("added") == 4 and report.count("failed") == 0
    chunks_before = kb.record.chunk_count()
    generation = kb.record.generation()

    again = ingest_paths(kb, [corpus])
    assert again.count("unchanged") == 4
    assert kb.record.generation() == generation and kb.record.chunk_count() == chunks_before

    (corpus / "astronomy.txt").write_text("Saturn has bright rings made of ice.", encoding="utf-8")
    changed = ingest_paths(kb, [corpus])
    assert changed.count("replaced") == 1 and changed.count("unchanged") == 3
    hits = search(kb, "Moon ocean tides", 5, ADMIN, "bm25")
    assert "corpus/astronomy.txt" not in _docs(hits)  # the old chunks are gone from BM25 ...
    hits = search(kb, "rings of ice around Saturn", 1, ADMIN, "dense")
    assert hits[0].document == "corpus/astronomy.txt" and "Saturn" in hits[0].text  # ... and from the index
    assert kb.store().ids() == kb.record.chunk_ids()


def test_chinese_query_finds_chinese_passage_by_bm25_alone_and_hybrid(settings: Settings, corpus: Path):
    kb = create_kb(settings, "zh")
    ingest_paths(kb, [corpus])
    for mode in ("bm25", "hybrid"):
        hits = search(kb, "不良贷款包括哪些类别", 3, ADMIN, mode)
        assert hits[0].document == "corpus/banking.md", mode
        assert hits[0].heading == "信用风险" and "次级" in hits[0].text
        hits = search(kb, "胸痛患者多久做心电图", 3, ADMIN, mode)
        assert hits[0].document == "corpus/hospital.md", mode
    # BM25 scores nothing for words no document has: no hit rather than a random one.
    assert search(kb, "量子计算机", 3, ADMIN, "bm25") == []


def test_english_query_by_every_mode(settings: Settings, corpus: Path):
    kb = create_kb(settings, "en")
    ingest_paths(kb, [corpus])
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(kb, "how does the garbage collector free memory", 2, ADMIN, mode)
        assert hits[0].document == "corpus/python.txt", mode


def test_delete_removes_a_document_everywhere(settings: Settings, corpus: Path):
    kb = create_kb(settings, "del")
    ingest_paths(kb, [corpus])
    kb.delete_document("corpus/python.txt")
    assert "corpus/python.txt" not in [d.doc_id for d in kb.record.documents()]
    for mode in ("dense", "bm25", "hybrid"):
        assert "corpus/python.txt" not in _docs(search(kb, "garbage collector memory", 5, ADMIN, mode))
    assert kb.store().ids() == kb.record.chunk_ids()
    with pytest.raises(NotFoundError, match="no document"):
        kb.delete_document("corpus/python.txt")


def test_groups_never_leak(settings: Settings, corpus: Path, tmp_path: Path):
    settings.kb.key_groups = {"teller": ["bank"], "nurse": ["hospital"], "ops": ["*"]}
    kb = create_kb(settings, "acl")
    ingest_paths(kb, [corpus / "banking.md"], groups=["bank"])
    ingest_paths(kb, [corpus / "hospital.md"], groups=["hospital"])
    ingest_paths(kb, [corpus / "python.txt"])  # no groups: everyone
    nurse = access_for_key(settings.kb, "nurse")
    queries = ["流动性风险管理", "胸痛 心电图", "Python memory"]
    # Documents ingested one by one are named by their file name.
    assert {d.doc_id for d in kb.record.documents()} == {"banking.md", "hospital.md", "python.txt"}
    for q in queries:
        for mode in ("dense", "bm25", "hybrid"):
            docs = _docs(search(kb, q, 10, nurse, mode))
            assert "banking.md" not in docs, (q, mode)
            docs = _docs(search(kb, q, 10, access_for_key(settings.kb, "teller"), mode))
            assert "hospital.md" not in docs, (q, mode)
        # The pipeline entry point applies the same rule.
        assert "banking.md" not in _docs(retrieve(settings, ["acl"], q, "nurse", 10))
    # The bank document is there for those allowed to see it.
    assert _docs(search(kb, "流动性风险管理", 1, access_for_key(settings.kb, "teller")))[0] == "banking.md"
    assert _docs(retrieve(settings, ["acl"], "流动性风险管理", "ops", 1)) == ["banking.md"]
    # An unknown key sees only documents without groups.
    stranger = access_for_key(settings.kb, "nobody")
    assert set(_docs(search(kb, "流动性 胸痛 Python", 10, stranger, "hybrid"))) == {"python.txt"}
    assert Access(admin=False, groups=frozenset()).may_see([]) is True


def test_retrieve_spans_knowledge_bases_and_formats_citations(settings: Settings, corpus: Path):
    ingest_paths(create_kb(settings, "zh2"), [corpus / "banking.md"])
    ingest_paths(create_kb(settings, "en2"), [corpus / "python.txt"])
    hits = retrieve(settings, ["zh2", "en2"], "virtual environment packages", None, 2)
    assert hits[0].kb == "en2" and hits[0].document == "python.txt"
    context = format_context(hits)
    numbered = [line for line in context.splitlines() if line.startswith("[")]
    assert numbered == ["[1] (python.txt)", '[2] (banking.md, section "商业银行流动性风险管理")']
    assert "cite" in context.lower()
    assert hits[0].text.strip() in context
    with pytest.raises(NotFoundError, match="does not exist"):
        retrieve(settings, ["missing"], "x", None, 2)


def test_embedder_mismatch_is_refused(settings: Settings, corpus: Path, tmp_path: Path):
    kb = create_kb(settings, "emb")
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "modules.json").write_text("[]")
    settings.kb.embedder = str(other)
    with pytest.raises(UserError, match="rebuild emb --embedder"):
        ingest_paths(kb, [corpus])
    settings.kb.embedder = None
    assert ingest_paths(kb, [corpus]).count("added") == 4


def test_bad_input_is_reported_per_file_and_the_rest_ingests(settings: Settings, corpus: Path):
    settings.kb.max_file_mb = 1
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n")
    (corpus / "huge.txt").write_bytes(b"a " * (600 * 1024))
    (corpus / "binary.md").write_bytes(b"\x00\x00\x00")
    kb = create_kb(settings, "bad")
    report = ingest_paths(kb, [corpus, corpus / "missing.txt"])
    failed = {Path(o.path).name: o.message for o in report.outcomes if o.status == "failed"}
    assert set(failed) == {"empty.txt", "image.png", "huge.txt", "binary.md", "missing.txt"}
    assert "empty" in failed["empty.txt"] and "unknown format" in failed["image.png"]
    assert (
        "limit" in failed["huge.txt"]
        and "binary" in failed["binary.md"]
        and "no such" in failed["missing.txt"]
    )
    assert report.count("added") == 4
    with pytest.raises(NotFoundError):
        open_kb(settings, "nope")
    with pytest.raises(UserError, match="not allowed"):
        create_kb(settings, "../escape")
    with pytest.raises(UserError, match="already exists"):
        create_kb(settings, "bad")


def test_state_survives_reopening(settings: Settings, corpus: Path):
    kb = create_kb(settings, "reopen")
    ingest_paths(kb, [corpus])
    before = [h.chunk_id for h in search(kb, "流动性风险", 3, ADMIN)]
    forget(settings, "reopen")
    kb2 = open_kb(settings, "reopen")
    assert kb2 is not kb
    assert [h.chunk_id for h in search(kb2, "流动性风险", 3, ADMIN)] == before


def test_hybrid_leaves_out_an_embedder_that_cannot_read_the_query(settings: Settings, corpus: Path):
    kb = create_kb(settings, "lang")
    ingest_paths(kb, [corpus])
    # The bundled MiniLM reads English only: a Chinese query is fused from BM25 alone ...
    assert search(kb, "量子计算机", 3, ADMIN, "hybrid") == []
    chinese = "不良贷款包括哪些类别"
    assert [h.chunk_id for h in search(kb, chinese, 3, ADMIN, "hybrid")] == [
        h.chunk_id for h in search(kb, chinese, 3, ADMIN, "bm25")
    ]
    # ... while an English query, or an embedder declared to read Chinese, gets both rankings.
    assert search(kb, "quantum computers", 3, ADMIN, "hybrid") != []
    settings.kb.embedder_languages = ["en", "zh"]
    assert len(search(kb, "量子计算机", 3, ADMIN, "hybrid")) == 3
