"""Commands from other terminals: approvals, pauses and stops, read from the store.

`fresh-sandbox approve a1` (another process) inserts a row in the store's
commands table; the supervisor's `StoreDecisions` applies pending rows at most
every 0.2 s and answers the agents' questions (`stop_reason`, `paused`,
`approval`). The run's own drains (a signal, the deadline, a closing window)
go through `stop_run`.
"""

from __future__ import annotations

import threading
import time

from orchestrator.store import Store


class StoreDecisions:
    """Approvals, pauses and stops: commands other terminals put in the store, plus the run's own."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.stop_all = threading.Event()
        self._run_stop_reason = "stopped on request"
        self._stopped: set[str] = set()
        self._paused: set[str] = set()
        self._run_paused = False
        self._verdicts: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._last_poll = 0.0

    def stop_run(self, reason: str) -> None:
        """Every agent stops at its next step; nothing new starts."""
        self._run_stop_reason = reason
        self.stop_all.set()

    def poll(self, force: bool = False) -> None:
        """Apply new commands from the store (at most every 0.2 s unless forced)."""
        with self._lock:
            if not force and time.monotonic() - self._last_poll < 0.2:
                return
            self._last_poll = time.monotonic()
            for cmd in self.store.pending(self.run_id):
                self._apply(cmd.command, cmd.agent_id)
                self.store.mark_done(cmd.id)

    def _apply(self, command: str, agent_id: str | None) -> None:
        if command == "stop":
            if agent_id is None:
                self._run_stop_reason = "stopped on request"
                self.stop_all.set()
            else:
                self._stopped.add(agent_id)
        elif command in ("pause", "resume"):
            pausing = command == "pause"
            if agent_id is None:
                self._run_paused = pausing
            elif pausing:
                self._paused.add(agent_id)
            else:
                self._paused.discard(agent_id)
        elif command in ("approve", "reject") and agent_id:
            self._verdicts[agent_id] = command == "approve"

    def stop_reason(self, agent_id: str) -> str | None:
        self.poll()
        if self.stop_all.is_set():
            return self._run_stop_reason
        return "stopped on request" if agent_id in self._stopped else None

    def paused(self, agent_id: str) -> bool:
        self.poll()
        return self._run_paused or agent_id in self._paused

    @property
    def run_paused(self) -> bool:
        return self._run_paused

    def approval(self, agent_id: str) -> bool | None:
        self.poll()
        return self._verdicts.get(agent_id)
