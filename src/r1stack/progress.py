"""Rich progress bars for long work (downloads, loading, ingestion): one look everywhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

T = TypeVar("T")
console = Console(stderr=True)


def _quiet() -> bool:
    return not sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a bar (count of items); plain iteration when stderr is not a terminal."""
    if _quiet():
        yield from items
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as p:
        yield from p.track(items, total=total, description=description)


def copy_with_progress(src: BinaryIO, dst: Path, size: int, description: str) -> None:
    tmp = dst.with_suffix(dst.suffix + ".part")
    with (
        open(tmp, "wb") as out,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=_quiet(),
        ) as p,
    ):
        task = p.add_task(description, total=size)
        while chunk := src.read(1 << 20):
            out.write(chunk)
            p.advance(task, len(chunk))
    tmp.replace(dst)  # whole file or nothing
