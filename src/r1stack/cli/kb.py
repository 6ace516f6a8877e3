"""`r1stack kb ...`: create, ingest, list, search, delete, verify, rebuild and bench local knowledge bases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from r1stack.config import get_settings

Opt = typer.Option
Arg = typer.Argument
kb_app = typer.Typer(help="Local knowledge bases: documents in, cited passages out.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@kb_app.command()
def create(
    name: Annotated[str, Arg(help="Knowledge base name (letters, digits, - and _).")],
    store: Annotated[str | None, Opt(help="chroma (default) or milvus.")] = None,
    embedder: Annotated[
        str | None, Opt(help="Local sentence-transformers model folder (default: bundled MiniLM).")
    ] = None,
) -> None:
    """Create an empty knowledge base."""
    from r1stack.kb.knowledge_base import create_kb

    kb = create_kb(get_settings(), name, store=store, embedder=embedder)
    info = kb.info()
    out.print(f"created {name}: store={info['store']} embedder={info['embedder']} dim={info['dim']}")


@kb_app.command()
def ingest(
    name: Annotated[str, Arg(help="Knowledge base to ingest into.")],
    paths: Annotated[list[Path], Arg(help="Files and folders (txt md html pdf docx csv json).")],
    groups: Annotated[
        str, Opt(help="Comma-separated groups allowed to see these documents (default: all).")
    ] = "",
) -> None:
    """Ingest files and folders; each bad file gets its own message and the rest still ingest."""
    from r1stack.kb.ingest import ingest_paths
    from r1stack.kb.knowledge_base import open_kb

    kb = open_kb(get_settings(), name)
    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    with _progress() as bar:
        task = bar.add_task(f"ingesting into {name}", total=None)

        def on_file(outcome, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if outcome.status == "failed":
                bar.console.print(f"[red]failed[/red] {outcome.message}", highlight=False, soft_wrap=True)

        report = ingest_paths(kb, paths, group_list, on_file)
    chunks = sum(o.chunks for o in report.outcomes if o.status in ("added", "replaced"))
    out.print(
        f"{report.count('added')} added, {report.count('replaced')} replaced, {report.count('unchanged')} unchanged, "
        f"{report.count('failed')} failed; {chunks} chunks written"
    )
    if report.count("failed"):
        sys.exit(1)  # typer.Exit's code is dropped by main()'s standalone_mode=False


@kb_app.command("list")
def list_(name: Annotated[str | None, Arg(help="Show this knowledge base's documents.")] = None) -> None:
    """List knowledge bases, or the documents of one."""
    from r1stack.kb.knowledge_base import list_kbs, open_kb

    settings = get_settings()
    if name is None:
        table = Table("name", "store", "embedder", "documents", "chunks")
        for n in list_kbs(settings):
            i = open_kb(settings, n).info()
            table.add_row(n, i["store"], i["embedder"], str(i["documents"]), str(i["chunks"]))
        out.print(table)
        return
    kb = open_kb(settings, name)
    table = Table("document", "chunks", "groups", "source")
    for d in kb.record.documents():
        table.add_row(d.doc_id, str(d.n_chunks), ",".join(d.groups) or "(all)", d.source)
    out.print(table)


@kb_app.command()
def search(
    name: Annotated[str, Arg(help="Knowledge base to search.")],
    query: Annotated[str, Arg(help="What to look for.")],
    top_k: Annotated[int | None, Opt("--top-k", help="How many chunks (default: kb.top_k).")] = None,
    mode: Annotated[str, Opt(help="hybrid | dense | bm25")] = "hybrid",
    key: Annotated[str | None, Opt(help="Search as this API key id would (its groups apply).")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print hits as JSON.")] = False,
) -> None:
    """Search one knowledge base."""
    from r1stack.kb.access import access_for_key
    from r1stack.kb.knowledge_base import open_kb
    from r1stack.kb.retrieval import search as kb_search

    settings = get_settings()
    kb = open_kb(settings, name)
    hits = kb_search(kb, query, top_k or settings.kb.top_k, access_for_key(settings.kb, key), mode)
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=1))
        return
    for i, h in enumerate(hits, 1):
        where = h.document + (f" p.{h.page}" if h.page else "") + (f" § {h.heading}" if h.heading else "")
        out.print(f"[bold][{i}][/bold] {where}  (score {h.score:.4f}, chunk {h.chunk_id})", highlight=False)
        out.print(h.text.strip()[:500], markup=False, highlight=False)
        out.print()


@kb_app.command()
def delete(
    name: Annotated[str, Arg(help="Knowledge base.")],
    doc: Annotated[str, Arg(help="Document id as `kb list NAME` shows it.")],
) -> None:
    """Delete one document and its chunks."""
    from r1stack.kb.knowledge_base import open_kb

    open_kb(get_settings(), name).delete_document(doc)
    out.print(f"deleted {doc} from {name}")


@kb_app.command()
def verify(name: Annotated[str, Arg(help="Knowledge base.")]) -> None:
    """Check the vector index against the stored chunks; exit 1 when it is damaged."""
    from r1stack.kb.knowledge_base import open_kb
    from r1stack.kb.maintenance import verify as kb_verify

    report = kb_verify(open_kb(get_settings(), name))
    if report.ok:
        out.print(f"ok: {report.record_chunks} chunks in the record, {report.index_chunks} in the index")
        return
    for p in report.problems:
        out.print(f"problem: {p}", markup=False, highlight=False)
    out.print(f"run `r1stack kb rebuild {name}` to restore the index from the stored chunks", markup=False)
    sys.exit(1)  # typer.Exit's code is dropped by main()'s standalone_mode=False


@kb_app.command()
def rebuild(
    name: Annotated[str, Arg(help="Knowledge base.")],
    embedder: Annotated[str | None, Opt(help="Migrate to this embedder (re-embeds every chunk).")] = None,
) -> None:
    """Rebuild the vector index from the stored chunks and embeddings (no re-embedding unless --embedder)."""
    from r1stack.kb.knowledge_base import open_kb
    from r1stack.kb.maintenance import rebuild as kb_rebuild

    kb = open_kb(get_settings(), name)
    with _progress() as bar:
        task = bar.add_task(f"rebuilding {name}", total=None)
        result = kb_rebuild(kb, embedder, lambda done, total: bar.update(task, completed=done, total=total))
    out.print(
        f"rebuilt {name}: {result['chunks']} chunks into index {result['index']}"
        + (f", {result['reembedded']} re-embedded with {result['embedder']}" if result["reembedded"] else "")
    )


@kb_app.command()
def bench(
    name: Annotated[str, Arg(help="Knowledge base.")],
    queries: Annotated[int, Opt(help="Number of probe queries.")] = 200,
) -> None:
    """HNSW recall@10 against exact search over the stored embeddings, and query latency."""
    from r1stack.kb.knowledge_base import open_kb
    from r1stack.kb.maintenance import measure_index

    kb = open_kb(get_settings(), name)
    m = measure_index(kb, queries)
    table = Table(
        "chunks",
        "queries",
        "M",
        "ef_construction",
        "ef_search",
        "recall@10",
        "p50 ms",
        "p99 ms",
        "exact p50 ms",
    )
    h = kb.hnsw
    table.add_row(
        str(m.chunks),
        str(m.queries),
        str(h.m),
        str(h.ef_construction),
        str(h.ef_search),
        f"{m.recall_at_10:.4f}",
        f"{m.p50_ms:.2f}",
        f"{m.p99_ms:.2f}",
        f"{m.exact_p50_ms:.2f}",
    )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
