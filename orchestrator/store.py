"""Durable state in SQLite (WAL): runs, agents and the commands other terminals send.

The supervisor writes; `status`, `approve`, `stop` and friends read and insert
commands from another process. One connection per Store, guarded by a lock, so
agent threads can share it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    status TEXT NOT NULL,
    budget_usd REAL NOT NULL,
    spent_usd REAL NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    ended_at REAL,
    pid INTEGER,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS agents (
    run_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    task TEXT NOT NULL,
    branch TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    cost_usd REAL NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    container_id TEXT NOT NULL DEFAULT '',
    tip TEXT NOT NULL DEFAULT '',
    pushed INTEGER NOT NULL DEFAULT 0,
    tests_passed INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, agent_id)
);
CREATE TABLE IF NOT EXISTS ledger (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    reservation_id INTEGER,
    usd REAL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    agent_id TEXT,
    command TEXT NOT NULL,
    created_at REAL NOT NULL,
    done_at REAL
);
"""

COMMANDS = ("approve", "reject", "stop", "pause", "resume")


def pid_alive(pid: int | None) -> bool:
    """Whether a run's supervisor process still exists (on this machine)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass(frozen=True)
class Command:
    id: int
    run_id: str
    agent_id: str | None
    command: str


class Store:
    """The state database of one state directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():  # the state dir sits in the user's repo: keep it out of `git status`
            ignore.write_text("*\n", encoding="utf-8")
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- runs ----------------------------------------------------------------
    def start_run(self, run_id: str, repo: str, budget_usd: float, pid: int, info: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO runs (run_id, repo, status, budget_usd, started_at, pid, info) VALUES (?,?,?,?,?,?,?)",
            (run_id, repo, "running", budget_usd, time.time(), pid, json.dumps(info)),
        )

    def set_status(self, run_id: str, status: str, pid: int) -> None:
        self._exec("UPDATE runs SET status=?, pid=?, ended_at=NULL WHERE run_id=?", (status, pid, run_id))

    def end_run(self, run_id: str, status: str, spent_usd: float) -> None:
        self._exec("UPDATE runs SET status=?, spent_usd=?, ended_at=? WHERE run_id=?",
                   (status, spent_usd, time.time(), run_id))

    def set_spent(self, run_id: str, spent_usd: float) -> None:
        self._exec("UPDATE runs SET spent_usd=? WHERE run_id=?", (spent_usd, run_id))

    def run(self, run_id: str | None = None) -> dict[str, Any] | None:
        """One run, or the latest when `run_id` is None."""
        rows = (self._exec("SELECT * FROM runs WHERE run_id=?", (run_id,)) if run_id
                else self._exec("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1"))
        return dict(rows[0]) if rows else None

    # -- agents --------------------------------------------------------------
    def upsert_agent(self, run_id: str, row: dict[str, Any]) -> None:
        cols = ["run_id", *row.keys(), "updated_at"]
        values = (run_id, *row.values(), time.time())
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols[1:] if c not in ("agent_id", "started_at"))
        self._exec(
            f"INSERT INTO agents ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT(run_id, agent_id) DO UPDATE SET {updates}",
            values,
        )

    def agents(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._exec("SELECT * FROM agents WHERE run_id=? ORDER BY agent_id", (run_id,))]

    def find_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The newest agent with this id, in any run."""
        rows = self._exec(
            "SELECT a.* FROM agents a JOIN runs r USING (run_id) WHERE a.agent_id=? "
            "ORDER BY r.started_at DESC LIMIT 1", (agent_id,))
        return dict(rows[0]) if rows else None

    # -- ledger --------------------------------------------------------------
    def record_ledger(self, run_id: str, seq: int, kind: str, agent_id: str,
                      reservation_id: int | None, usd: float | None) -> None:
        self._exec("INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?)",
                   (run_id, seq, kind, agent_id, reservation_id, usd, time.time()))

    def last_ledger_seq(self, run_id: str) -> int:
        rows = self._exec("SELECT COALESCE(MAX(seq), 0) AS m FROM ledger WHERE run_id=?", (run_id,))
        return int(rows[0]["m"])

    def spent_by_agent(self, run_id: str) -> dict[str, float]:
        """What each agent has spent, counting a reservation left open (a crash mid-call) as spent."""
        rows = self._exec(
            "SELECT r.agent_id, r.usd AS reserved, s.usd AS settled FROM ledger r "
            "LEFT JOIN ledger s ON s.run_id=r.run_id AND s.kind='settle' AND s.reservation_id=r.reservation_id "
            "WHERE r.run_id=? AND r.kind='reserve'", (run_id,))
        spent: dict[str, float] = {}
        for row in rows:
            usd = row["settled"] if row["settled"] is not None else row["reserved"]
            spent[row["agent_id"]] = spent.get(row["agent_id"], 0.0) + float(usd or 0.0)
        return spent

    # -- commands ------------------------------------------------------------
    def send(self, run_id: str, command: str, agent_id: str | None = None) -> int:
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO commands (run_id, agent_id, command, created_at) VALUES (?,?,?,?)",
                (run_id, agent_id, command, time.time()))
            return int(cur.lastrowid or 0)

    def pending(self, run_id: str) -> list[Command]:
        rows = self._exec(
            "SELECT id, run_id, agent_id, command FROM commands WHERE run_id=? AND done_at IS NULL ORDER BY id",
            (run_id,))
        return [Command(r["id"], r["run_id"], r["agent_id"], r["command"]) for r in rows]

    def mark_done(self, command_id: int) -> None:
        self._exec("UPDATE commands SET done_at=? WHERE id=?", (time.time(), command_id))

    def iter_runs(self, limit: int = 20) -> Iterator[dict[str, Any]]:
        for row in self._exec("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)):
            yield dict(row)
