"""Claims and overlap: each task goes to one agent, once, across resumed runs.

Claims live in their own `claims` table of the run's state database
(`<state_dir>/state.db`, WAL), so they survive a crash and a resume. Tasks an
earlier run already covered (a `fresh/*/<agent>-<slug>` branch on the remote,
or an open pull request) are skipped before they are offered.
"""

from __future__ import annotations

import re
import sqlite3
import time
from itertools import combinations
from pathlib import Path
from typing import Iterable

from orchestrator.tasks.model import Task

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    task_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
"""
_FRESH_BRANCH = re.compile(r"^(?:refs/heads/)?fresh/[^/]+/a\d+-(?P<slug>[a-z0-9-]+)$")


class Claims:
    """The claims table of one state database; a context manager that closes its connection."""

    def __init__(self, store_path: Path) -> None:
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(store_path, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def claim(self, run_id: str, task_key: str, agent_id: str) -> bool:
        """Take `task_key` for this agent; True if it is now (or already was) theirs."""
        self._db.execute("INSERT OR IGNORE INTO claims (task_key, run_id, agent_id, claimed_at) "
                         "VALUES (?,?,?,?)", (task_key, run_id, agent_id, time.time()))
        return self.holder(task_key) == (run_id, agent_id)

    def release(self, task_key: str) -> None:
        """Give a task back (its agent failed before doing anything), so a later run may take it."""
        self._db.execute("DELETE FROM claims WHERE task_key=?", (task_key,))

    def holder(self, task_key: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT run_id, agent_id FROM claims WHERE task_key=?", (task_key,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def claimed(self) -> dict[str, tuple[str, str]]:
        """task key -> (run id, agent id) for every claim."""
        return {str(k): (str(r), str(a)) for k, r, a in
                self._db.execute("SELECT task_key, run_id, agent_id FROM claims")}


def claim(store_path: Path, run_id: str, task_key: str, agent_id: str) -> bool:
    """One-shot `Claims(store_path).claim(...)`: True when the task is this agent's."""
    with Claims(store_path) as claims:
        return claims.claim(run_id, task_key, agent_id)


def unclaimed(tasks: Iterable[Task], store_path: Path) -> list[Task]:
    """Tasks no run has claimed yet (all of them when there is no state database)."""
    if not store_path.exists():
        return list(tasks)
    with Claims(store_path) as claims:
        taken = claims.claimed()
    return [t for t in tasks if t.key not in taken]


def branch_slugs(branches: Iterable[str]) -> set[str]:
    """Task slugs of `fresh/<run>/<agent>-<slug>` branch names (others are ignored)."""
    return {m["slug"] for b in branches if (m := _FRESH_BRANCH.match(b.strip()))}


def not_covered(tasks: Iterable[Task], branches: Iterable[str], pull_titles: Iterable[str] = ()) -> list[Task]:
    """Drop tasks an earlier run already has a branch for, or an open pull request titled like them."""
    from orchestrator.supervisor import slugify

    slugs = branch_slugs(branches)
    titles = {slugify(t) for t in pull_titles}
    return [t for t in tasks if slugify(t.title) not in slugs and slugify(t.title) not in titles]


def overlapping(changes_by_agent: dict[str, set[str]]) -> list[tuple[str, str, set[str]]]:
    """(agent, agent, shared files) for every pair of agents that changed the same files."""
    pairs = []
    for first, second in combinations(sorted(changes_by_agent), 2):
        shared = changes_by_agent[first] & changes_by_agent[second]
        if shared:
            pairs.append((first, second, shared))
    return pairs

