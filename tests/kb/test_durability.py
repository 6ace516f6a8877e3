"""Damage the vector index on disk, or kill an ingesting process: the record restores the index, nothing is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1stack.config import Settings
from r1stack.kb import create_kb, open_kb, search
from r1stack.kb.access import ADMIN
from r1stack.kb.ingest import ingest_paths
from r1stack.kb.knowledge_base import INDEX_DIR, RECORD_FILE, forget
from r1stack.kb.maintenance import rebuild, verify

QUERIES = [
    "流动性风险管理体系",
    "不良贷款的类别",
    "胸痛 心电图 分诊",
    "garbage collector memory",
    "Moon ocean tides",
]


def _top(kb) -> dict[str, list[str]]:
    return {
        q: [h.chunk_id for h in search(kb, q, 3, ADMIN, mode)]
        for q in QUERIES
        for mode in ("dense", "hybrid")
    }


def _index_files(settings: Settings, name: str) -> list[Path]:
    root = settings.kb_dir / name / INDEX_DIR
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size > 0]


def _garble(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(os.urandom(max(size, 64)))


@pytest.mark.parametrize("damage", ["garble", "delete"])
def test_damaged_index_is_detected_and_rebuilt_without_reembedding(
    settings: Settings, corpus: Path, damage: str, monkeypatch
):
    kb = create_kb(settings, "dur")
    ingest_paths(kb, [corpus])
    before = _top(kb)
    assert verify(kb).ok
    forget(settings, "dur")  # let go of every open handle, as a restarted process would have none

    # Every file of the index: Chroma's sqlite log and HNSW segments, Milvus Lite's manifests, data and WAL.
    targets = _index_files(settings, "dur")
    assert targets
    for p in targets:
        _garble(p) if damage == "garble" else p.unlink()

    kb = open_kb(settings, "dur")
    report = verify(kb)
    assert not report.ok and report.problems, report

    # Rebuilding must not need the embedder for anything but nothing: prove it by breaking the loader.
    import r1stack.kb.embedder as embedder_module

    def no_embedding(*a, **k):
        raise AssertionError("rebuild re-embedded")

    monkeypatch.setattr(embedder_module.Embedder, "encode", no_embedding)
    result = rebuild(kb)
    monkeypatch.undo()
    assert result["reembedded"] == 0 and result["chunks"] == kb.record.chunk_count()
    assert verify(kb).ok
    assert _top(kb) == before
    forget(settings, "dur")
    assert _top(open_kb(settings, "dur")) == before  # and it holds after a restart


def _make_folder(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        body = " ".join(
            f"Document {i} sentence {j} talks about topic {i * 7 + j} and the reserve ratio {j}."
            for j in range(10)
        )
        (folder / f"doc{i:03d}.txt").write_text(body, encoding="utf-8")


def test_killed_ingestion_leaves_a_consistent_knowledge_base(settings: Settings, tmp_path: Path):
    n_files = 40
    folder = tmp_path / "many"
    _make_folder(folder, n_files)
    create_kb(settings, "kill")
    forget(settings, "kill")  # the child process owns the stores while it runs

    env = {
        **os.environ,
        "R1STACK_DATA_DIR": str(settings.data_dir),
        "R1STACK_KB__STORE": settings.kb.store,
        "R1STACK_KB__CHUNK_TOKENS": "64",
    }
    code = "from r1stack.cli.main import main; main()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, "kb", "ingest", "kill", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = settings.kb_dir / "kill" / RECORD_FILE
    committed = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        with sqlite3.connect(record) as db:
            committed = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        if committed >= 3:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert 3 <= committed < n_files, "the child was not killed half-way"

    kb = open_kb(settings, "kill")
    # The record: every document whole, no orphan chunk.
    docs = kb.record.documents()
    assert n_files > len(docs) >= committed
    with sqlite3.connect(record) as db:
        per_doc = dict(db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
    assert per_doc == {d.doc_id: d.n_chunks for d in docs}
    # The index agrees with the record once pending work is replayed (verify and every search replay it).
    report = verify(kb)
    assert report.ok, report.problems
    last = max(int(d.doc_id[-7:-4]) for d in docs)
    for mode in ("dense", "bm25"):
        hits = search(kb, f"Document {last} sentence 3 talks about topic {last * 7 + 3}", 1, ADMIN, mode)
        assert hits[0].document == f"many/doc{last:03d}.txt", mode
    # Ingesting again finishes the job: nothing duplicated, nothing lost.
    again = ingest_paths(kb, [folder])
    assert again.count("failed") == 0 and again.count("unchanged") == len(docs)
    assert len(kb.record.documents()) == n_files
    assert kb.store().ids() == kb.record.chunk_ids()


def test_rebuild_with_another_embedder_migrates_every_chunk(settings: Settings, corpus: Path):
    from r1stack.kb.embedder import BUNDLED, bundled_model_dir

    kb = create_kb(settings, "migrate")
    ingest_paths(kb, [corpus])
    before = _top(kb)
    assert kb.embedder_name == BUNDLED
    # The same weights named by folder path count as another embedder: every chunk is embedded again.
    target = str(bundled_model_dir())
    result = rebuild(kb, embedder=target)
    assert result["reembedded"] == kb.record.chunk_count() and kb.embedder_name == target
    assert verify(kb).ok
    assert _top(kb) == before
    settings.kb.embedder = None
    forget(settings, "migrate")
    assert open_kb(settings, "migrate").info()["embedder"] == target
