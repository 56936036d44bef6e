"""The lifecycle of an agent as data: its states, its record, and what it needs from the run.

    queued -> starting -> analysis -> implementation -> testing -> awaiting_approval
           -> pushing -> pushed, or any final state on the way (failed, tests_failed,
           refused, no_changes, budget_exhausted, timed_out, stopped, rejected)

Kept apart from the loop that drives it, so the supervisor, the report and the
dashboard can speak of agents without importing the agent loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from orchestrator.budget import Ledger
from orchestrator.config import RunConfig, TaskSpec
from orchestrator.gate import Verdict
from orchestrator.prices import Price
from sandbox.base import Backend

if TYPE_CHECKING:
    from orchestrator.model import Model


class State(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    ANALYSIS = "analysis"
    IMPLEMENTATION = "implementation"
    TESTING = "testing"
    AWAITING_APPROVAL = "awaiting_approval"
    PUSHING = "pushing"
    PUSHED = "pushed"
    TESTS_FAILED = "tests_failed"
    NO_CHANGES = "no_changes"
    BUDGET_EXHAUSTED = "budget_exhausted"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    REJECTED = "rejected"
    REFUSED = "refused"  # the commits hold something that may not leave (symlink out, gitlink, huge file)
    FAILED = "failed"


FINAL_STATES = frozenset({
    State.PUSHED, State.TESTS_FAILED, State.NO_CHANGES, State.BUDGET_EXHAUSTED,
    State.TIMED_OUT, State.STOPPED, State.REJECTED, State.REFUSED, State.FAILED,
})


@dataclass
class AgentRecord:
    """What is known about one agent; the report and the store read it."""

    agent_id: str
    task: TaskSpec
    branch: str
    state: State = State.QUEUED
    reason: str = ""
    summary: str = ""
    plan: str = ""
    container_id: str = ""
    tip: str = ""
    pushed: bool = False
    pr_url: str = ""
    tests_passed: bool = False
    verdict: Verdict | None = None
    test_changes: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    steps: int = 0
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def duration_s(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


class Decisions(Protocol):
    """Where approvals, pauses and stop requests come from (the store, in a real run)."""

    def stop_reason(self, agent_id: str) -> str | None:
        """Why the agent must stop now (a stop command, a closing run window), or None."""
        ...

    def paused(self, agent_id: str) -> bool: ...

    def approval(self, agent_id: str) -> bool | None:
        """True approved, False rejected, None not decided yet."""
        ...


@dataclass(frozen=True)
class AgentContext:
    """What an agent needs from the run; shared by every agent of it."""

    config: RunConfig
    run_id: str
    backend: Backend
    model: Model
    price: Price
    ledger: Ledger
    run_repo: Path
    base_commit: str
    remote_url: str
    base_branch: str
    decisions: Decisions
    on_change: Callable[[AgentRecord], None]
    run_deadline: float  # time.monotonic() value
