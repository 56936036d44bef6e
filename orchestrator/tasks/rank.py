"""Ranking: one list from every source, best first, each task once."""

from __future__ import annotations

from typing import Iterable

from orchestrator.tasks.model import Task


def rank(tasks: Iterable[Task], limit: int | None = None) -> list[Task]:
    """Drop repeated keys (the higher score wins), sort by score then title, cut at `limit`."""
    best: dict[str, Task] = {}
    for task in tasks:
        if task.key not in best or task.score > best[task.key].score:
            best[task.key] = task
    ordered = sorted(best.values(), key=lambda t: (-t.score, t.title))
    return ordered if limit is None else ordered[:max(limit, 0)]
