"""Rank fusion and result diversity: weighted reciprocal rank fusion, and a cap on chunks per document."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def rrf(
    rankings: list[list[str]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ranking i adds weights[i]/(k + rank) to each item; ties keep first-seen order."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def cap_per_group(items: list[T], n: int, per_group: int, group: Callable[[T], Hashable]) -> list[T]:
    """The first `n` items in order, at most `per_group` from any one group (0: no cap).

    When too few groups are left to fill `n`, the slots go to the best of the items held back, after the
    capped ones: the cap spreads the top over documents, it never shortens the answer.
    """
    if per_group <= 0:
        return items[:n]
    taken: list[T] = []
    held: list[T] = []
    counts: dict[Hashable, int] = {}
    for item in items:
        if len(taken) == n:
            break
        g = group(item)
        if counts.get(g, 0) < per_group:
            counts[g] = counts.get(g, 0) + 1
            taken.append(item)
        else:
            held.append(item)
    return taken + held[: n - len(taken)]
