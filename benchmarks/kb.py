"""Knowledge-base benchmark: ingestion speed, search latency at 10k/100k chunks, retrieval quality by mode.

Quality sets are built from text we did not write:
  English: `pydoc` plain-text documentation of Python standard-library modules. A query is the first sentence
    of a documented function's or class's docstring; the relevant document is the module whose pydoc holds it.
  English, source comments: a query is the first sentence (>= 6 words) of a comment block in the module's own
    source code that occurs in no pydoc text: the same relevant module, described in words its documentation
    does not contain (less lexical than a docstring sentence, so fairer to dense retrieval). Questions from
    half of the modules (sorted, every second one) are the tuning split on which the fusion constant
    kb.rrf_k was chosen; only the other half is reported as a quality set.
  Chinese: the zh_CN translations shipped in this machine's gettext catalogues (/usr/share/locale/zh_CN/
    LC_MESSAGES/*.mo: coreutils, git, bash, dpkg, postgres ...), each message of >= 40 Chinese characters a
    document. A query is one clause (>= 8 Chinese characters, between punctuation) that occurs in that message
    only. Both are known-item sets: the relevant item is the one document the query text came from.
Run: .venv/bin/python benchmarks/kb.py [--queries 150] [--scales 10000,100000]
"""

from __future__ import annotations

import argparse
import gettext
import glob
import importlib
import inspect
import io
import json
import os
import platform
import pydoc
import random
import re
import shutil
import tempfile
import time
import tokenize
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from r1stack.config import KBSettings, Settings
from r1stack.kb import create_kb, search
from r1stack.kb.access import ADMIN
from r1stack.kb.ingest import ingest_bytes
from r1stack.kb.knowledge_base import doc_key_for
from r1stack.kb.maintenance import measure_index
from r1stack.kb.models import Chunk, DocumentInfo
from r1stack.kb.retrieval import candidate_rankings, rrf

MODULES = [
    "argparse", "asyncio.tasks", "base64", "bisect", "calendar", "contextlib", "csv", "dataclasses",
    "datetime", "fractions", "functools", "gzip", "hashlib", "heapq",
    "itertools", "json", "pickle", "queue",
    "random", "re", "secrets", "shlex", "shutil", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "time", "uuid", "zipfile",
]  # fmt: skip
CJK = re.compile(r"[\u4e00-\u9fff]")
console = Console()


def english_set(n_queries: int, rng: random.Random) -> tuple[dict[str, str], list[tuple[str, str]]]:
    docs: dict[str, str] = {}
    candidates: list[tuple[str, str]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        docs[name] = pydoc.render_doc(module, renderer=pydoc.plaintext)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            doc = inspect.getdoc(obj) or ""
            first = re.split(r"(?<=[.!?])\s", " ".join(doc.split("\n\n")[0].split()), maxsplit=1)[0]
            if len(first.split()) >= 6:
                candidates.append((first, name))
    texts = {k: " ".join(v.split()) for k, v in docs.items()}
    unique = [(q, d) for q, d in candidates if sum(q in t for t in texts.values()) == 1 and q in texts[d]]
    rng.shuffle(unique)
    return docs, unique[:n_queries]


def comment_blocks(source: str) -> list[str]:
    """Consecutive comment lines of a Python source joined into one text each."""
    blocks, block = [], []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            block.append(tok.string.lstrip("#").strip())
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) and block:
            blocks.append(" ".join(" ".join(block).split()))
            block = []
    return blocks


def comment_sets(
    docs: dict[str, str], n_queries: int, rng: random.Random
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(tuning split, reported split): source-comment questions from two disjoint halves of the modules."""
    texts = [" ".join(v.split()) for v in docs.values()]
    tune_modules = set(sorted(MODULES)[0::2])
    tune, report = [], []
    for name in MODULES:
        try:
            source = inspect.getsource(importlib.import_module(name))
        except (OSError, TypeError):  # modules written in C have no Python source
            continue
        for block in comment_blocks(source):
            first = re.split(r"(?<=[.!?])\s", block, maxsplit=1)[0]
            if len(re.findall(r"[A-Za-z]{2,}", first)) >= 6 and not any(first in t for t in texts):
                (tune if name in tune_modules else report).append((first, name))
    rng.shuffle(tune)
    rng.shuffle(report)
    return tune, report[:n_queries]


def chinese_set(n_queries: int, rng: random.Random) -> tuple[dict[str, str], list[tuple[str, str]]]:
    docs: dict[str, str] = {}
    for path in sorted(glob.glob("/usr/share/locale/zh_CN/LC_MESSAGES/*.mo")):
        with open(path, "rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
        for i, (k, v) in enumerate(catalog.items()):
            if k and isinstance(v, str) and len(CJK.findall(v)) >= 40:
                docs[f"{Path(path).stem}#{i}"] = v
    flat = {k: re.sub(r"\s*\n\s*", "", v) for k, v in docs.items()}
    queries = []
    for doc_id, text in flat.items():
        clauses = [c.strip() for c in re.split(r"[，。；：！？、（）()\[\]\"“”]", text)]
        clauses = [c for c in clauses if len(CJK.findall(c)) >= 8 and sum(c in t for t in flat.values()) == 1]
        if clauses:
            queries.append((rng.choice(clauses), doc_id))
    rng.shuffle(queries)
    return {k: v for k, v in flat.items()}, queries[:n_queries]


def ingest_corpus(settings: Settings, name: str, docs: dict[str, str], progress: Progress) -> dict:
    kb = create_kb(settings, name)
    kb.embedder()
    task = progress.add_task(f"ingest {name}", total=len(docs))
    t0 = time.perf_counter()
    chunks = 0
    for doc_id, text in docs.items():
        outcome = ingest_bytes(kb, doc_id, f"{doc_id}.txt", text.encode(), [])
        assert outcome.status == "added", outcome.message
        chunks += outcome.chunks
        progress.advance(task)
    seconds = time.perf_counter() - t0
    return {
        "kb": kb,
        "documents": len(docs),
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
    }


def quality(kb, queries: list[tuple[str, str]], progress: Progress) -> dict:
    out = {}
    task = progress.add_task(f"quality {kb.name}", total=3 * len(queries))
    for mode in ("dense", "bm25", "hybrid"):
        hits5, rr = 0, 0.0
        for query, doc in queries:
            ranked = [h.document for h in search(kb, query, 10, ADMIN, mode)]
            hits5 += doc in ranked[:5]
            rr += 1.0 / (ranked.index(doc) + 1) if doc in ranked else 0.0
            progress.advance(task)
        out[mode] = {"recall@5": hits5 / len(queries), "mrr@10": rr / len(queries)}
    return out


def tune_rrf_k(kb, queries: list[tuple[str, str]], grid: tuple[int, ...], progress: Progress) -> dict:
    """Hybrid recall@5 / MRR@10 for each RRF constant, through the product's own candidate rankings."""
    task = progress.add_task(f"tune rrf_k on {len(queries)} questions", total=len(queries))
    per_k = {k: [0, 0.0] for k in grid}
    for query, doc in queries:
        rankings = candidate_rankings(kb, query, 10, None, "hybrid")
        for k in grid:
            ids = [cid for cid, _ in rrf(rankings, k)[:10]]
            chunks = kb.record.chunks(ids)
            ranked = [chunks[c].doc_id for c in ids if c in chunks]
            per_k[k][0] += doc in ranked[:5]
            per_k[k][1] += 1.0 / (ranked.index(doc) + 1) if doc in ranked else 0.0
        progress.advance(task)
    table = {
        str(k): {"recall@5": h / len(queries), "mrr@10": rr / len(queries)} for k, (h, rr) in per_k.items()
    }
    best = max(grid, key=lambda k: (table[str(k)]["recall@5"], table[str(k)]["mrr@10"]))
    return {"grid": table, "best_rrf_k": best}


def fill_to(kb, source_kb_list, target: int, rng: np.random.Generator, progress: Progress) -> float:
    """Grow `kb` to `target` chunks from the real corpora: their texts, tokens and embeddings plus small noise."""
    rows = []
    for src in source_kb_list:
        ids, matrix = src.vectors_matrix()
        texts = src.record.chunks(ids)
        tokens = {cid: tok for cid, _, tok in src.record.bm25_rows()}
        rows.extend((texts[i].text, tokens[i].split(), matrix[j]) for j, i in enumerate(ids))
    have = kb.record.chunk_count()
    task = progress.add_task(f"fill {kb.name} to {target}", total=target - have)
    t0 = time.perf_counter()
    batch = 2000
    while have < target:
        n = min(batch, target - have)
        picks = rng.integers(0, len(rows), size=n)
        vecs = np.stack([rows[p][2] for p in picks]) + rng.normal(scale=0.02, size=(n, 384)).astype(
            np.float32
        )
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        doc_id = f"synthetic-{have}"
        key = doc_key_for(doc_id)
        chunks = [Chunk(f"{key}-{i}", doc_id, i, rows[p][0]) for i, p in enumerate(picks)]
        info = DocumentInfo(doc_id, doc_id, doc_id, [], time.time(), n)
        with kb.lock:
            kb.record.put_document(info, key, chunks, [rows[p][1] for p in picks], vecs)
            kb._sync_doc(kb.store(), key)
        have += n
        progress.advance(task, n)
    return time.perf_counter() - t0


def latency(kb, queries: list[str], progress: Progress) -> dict:
    out = {}
    search(kb, queries[0], 5, ADMIN, "hybrid")  # build the BM25 index once, outside the timings
    task = progress.add_task(f"latency {kb.name}", total=3 * len(queries))
    for mode in ("dense", "bm25", "hybrid"):
        times = []
        for q in queries:
            t0 = time.perf_counter()
            search(kb, q, 5, ADMIN, mode)
            times.append(time.perf_counter() - t0)
            progress.advance(task)
        out[mode] = {
            "p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3),
        }
    m = measure_index(kb, queries=100)
    out["index_only"] = {
        "hnsw_p50_ms": m.p50_ms,
        "hnsw_p99_ms": m.p99_ms,
        "exact_numpy_p50_ms": m.exact_p50_ms,
        "hnsw_recall@10_vs_exact": m.recall_at_10,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--scales", default="10000,100000")
    ap.add_argument("--stores", default="chroma,milvus")
    ap.add_argument(
        "--milvus-max", type=int, default=10000, help="Milvus Lite is slow to fill; cap its scale."
    )
    ap.add_argument("--embed-threads", type=int, default=1)
    ap.add_argument(
        "--quick", action="store_true", help="A small smoke run (few documents); not for the record."
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "kb.json"))
    args = ap.parse_args()
    rng = random.Random(0)
    en_docs, en_q = english_set(args.queries, rng)
    zh_docs, zh_q = chinese_set(args.queries, rng)
    tune_q, cm_q = comment_sets(en_docs, args.queries, random.Random(1))
    if args.quick:
        en_docs = dict(list(en_docs.items())[:4])
        zh_docs = dict(list(zh_docs.items())[:60])
        en_q = [q for q in en_q if q[1] in en_docs][:20]
        zh_q = [q for q in zh_q if q[1] in zh_docs][:20]
        tune_q = [q for q in tune_q if q[1] in en_docs][:20]
        cm_q = [q for q in cm_q if q[1] in en_docs][:20]
    work = Path(tempfile.mkdtemp(prefix="r1kb-bench-"))
    results: dict = {
        "conditions": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "platform": platform.platform(),
            "embedder": "bundled all-MiniLM-L6-v2 (sentence-transformers, CPU)",
            "embed_threads": args.embed_threads,
            "chunk_tokens": KBSettings().chunk_tokens,
            "chunk_overlap": KBSettings().chunk_overlap,
            "hnsw": {"M": KBSettings().hnsw_m, "ef_construction": KBSettings().hnsw_ef_construction,
                     "ef_search": KBSettings().hnsw_ef_search},
        },
        "datasets": {
            "english": {"source": f"pydoc plaintext of {len(MODULES)} stdlib modules", "documents": len(en_docs),
                        "queries": len(en_q), "query_kind": "first docstring sentence, unique in corpus"},
            "english_comments": {"source": f"the same pydoc corpus ({len(en_docs)} modules)",
                        "documents": len(en_docs), "queries": len(cm_q),
                        "query_kind": "first sentence of a source-code comment block, in no pydoc text; "
                                      "modules not in the tuning split",
                        "tuning_split_queries": len(tune_q)},
            "chinese": {"source": "zh_CN gettext catalogues in /usr/share/locale (messages >= 40 CJK chars)",
                        "documents": len(zh_docs), "queries": len(zh_q),
                        "query_kind": "one clause (>= 8 CJK chars) unique to its message"},
        },
        "notes": [
            f"hybrid = reciprocal rank fusion (k={KBSettings().rrf_k}) of the dense and BM25 rankings, "
            "max(5*top_k, 30) candidates each",
            "rrf_k was chosen on the tuning split only (source-comment questions of every second module, sorted "
            "by name; see tuning), never on a reported question; the docstring questions had no say in it",
            "chunks are cut to fit the embedder's window (256 MiniLM tokens, heading included): before, 85% of "
            "the pydoc chunks were longer and their tails never reached the dense index",
            "recall@5: the relevant document among the top 5 chunks (several chunks of one document may fill it)",
            "with the bundled English-only embedder, hybrid leaves the dense ranking out for Chinese queries "
            "(kb.embedder_languages), so Chinese hybrid equals BM25 here; Chinese dense shows why",
            "latency probes: 50 English + 50 Chinese queries, top_k=5, end to end (query embedding included)",
            "index_only: HNSW search alone vs exact numpy search over the same stored vectors (the peer)",
            "10k/100k chunks: the real corpora's chunks and embeddings repeated with small noise (not re-embedded)",
            "machine shared with other jobs: see load_average_at_start; timings are noisy, compare ratios",
        ],
        "ingestion": {}, "quality": {}, "tuning": {}, "latency": {},
    }  # fmt: skip
    try:
        with Progress(console=console) as progress:
            settings = Settings(
                data_dir=work, kb=KBSettings(store="chroma", embed_threads=args.embed_threads)
            )
            en = ingest_corpus(settings, "english", en_docs, progress)
            zh = ingest_corpus(settings, "chinese", zh_docs, progress)
            for lang, r in (("english", en), ("chinese", zh)):
                results["ingestion"][lang] = {k: v for k, v in r.items() if k != "kb"} | {"store": "chroma"}
            results["quality"]["english"] = quality(en["kb"], en_q, progress)
            results["quality"]["english_comments"] = quality(en["kb"], cm_q, progress)
            results["quality"]["chinese"] = quality(zh["kb"], zh_q, progress)
            results["bar"] = bar(results["quality"])
            tuning = tune_rrf_k(en["kb"], tune_q, (1, 2, 5, 10, 20, 60), progress)
            tuning["used_rrf_k"] = KBSettings().rrf_k
            results["tuning"] = {"split": "english source-comment questions of the tuning modules"} | tuning
            probe = [q for q, _ in en_q[:50]] + [q for q, _ in zh_q[:50]]
            for store in [s for s in args.stores.split(",") if s]:
                s = Settings(
                    data_dir=work / store, kb=KBSettings(store=store, embed_threads=args.embed_threads)
                )
                kb = create_kb(s, f"scale-{store}")
                for scale in [int(x) for x in args.scales.split(",") if x]:
                    if store == "milvus" and scale > args.milvus_max:
                        continue
                    fill_s = fill_to(kb, [en["kb"], zh["kb"]], scale, np.random.default_rng(scale), progress)
                    results["latency"][f"{store}@{scale}"] = latency(kb, probe, progress) | {
                        "chunks": kb.record.chunk_count(), "fill_seconds_no_embedding": fill_s
                    }  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    console.print(f"wrote {args.out}")


def bar(quality: dict) -> dict:
    """The issue's bar per set: hybrid recall@5 >= 0.9 and >= the better of dense and BM25 alone."""
    out = {}
    for name, q in quality.items():
        h, best = q["hybrid"]["recall@5"], max(q["dense"]["recall@5"], q["bm25"]["recall@5"])
        out[name] = {
            "met": h >= 0.9 and h >= best,
            "short_of_0.9": round(max(0.0, 0.9 - h), 4),
            "short_of_best_single": round(max(0.0, best - h), 4),
        }
    return out


def report(r: dict) -> None:
    t = Table("set", "docs", "chunks", "chunks/s ingest")
    for lang, v in r["ingestion"].items():
        t.add_row(lang, str(v["documents"]), str(v["chunks"]), f"{v['chunks_per_s']:.1f}")
    console.print(t)
    t = Table("set", "queries", "mode", "recall@5", "MRR@10", "bar")
    for lang, modes in r["quality"].items():
        b = r["bar"][lang]
        verdict = "met" if b["met"] else f"missed by {max(b['short_of_0.9'], b['short_of_best_single']):.3f}"
        for mode, v in modes.items():
            t.add_row(
                lang,
                str(r["datasets"][lang]["queries"]),
                mode,
                f"{v['recall@5']:.3f}",
                f"{v['mrr@10']:.3f}",
                verdict if mode == "hybrid" else "",
            )
    console.print(t)
    tu = r.get("tuning") or {}
    if tu:
        console.print(
            "rrf_k on the tuning split: "
            + ", ".join(f"k={k}: {v['recall@5']:.3f}" for k, v in tu["grid"].items())
            + f" -> best {tu['best_rrf_k']}, used {tu['used_rrf_k']}"
        )
    t = Table("store@chunks", "dense p50/p99 ms", "bm25 p50/p99 ms", "hybrid p50/p99 ms", "HNSW p50 ms",
              "exact p50 ms", "HNSW recall@10")  # fmt: skip
    for k, v in r["latency"].items():
        i = v["index_only"]
        t.add_row(
            k,
            *(f"{v[m]['p50_ms']:.1f} / {v[m]['p99_ms']:.1f}" for m in ("dense", "bm25", "hybrid")),
            f"{i['hnsw_p50_ms']:.2f}",
            f"{i['exact_numpy_p50_ms']:.2f}",
            f"{i['hnsw_recall@10_vs_exact']:.3f}",
        )
    console.print(t)


if __name__ == "__main__":
    main()
