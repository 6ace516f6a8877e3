"""Ranking quality of risk scores against labels: ROC AUC and precision among the top 5% riskiest."""

from __future__ import annotations


def auc(scores: list[float], labels: list[int]) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def precision_at(scores: list[float], labels: list[int], fraction: float = 0.05) -> float:
    k = max(1, round(len(scores) * fraction))
    top = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    return sum(labels[i] for i in top) / k
