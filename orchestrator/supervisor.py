"""The run: preflight, one thread per running agent, control commands, report.

The supervisor owns everything shared by the agents of a run (the ledger, the
store, the run repository) and hands each agent an `AgentContext`. One agent's
failure ends only that agent. Data flows one way: agents return records; the
supervisor persists them and writes the report.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator import gitops, report
from orchestrator.agent import AgentContext, AgentRecord, AgentRunner, State
from orchestrator.budget import Ledger
from orchestrator.config import RunConfig
from orchestrator.model import Model
from orchestrator.prices import Price
from orchestrator.store import Store
from sandbox.base import Backend

EXIT_OK = 0
EXIT_AGENTS_FAILED = 1
EXIT_CONFIG = 2
EXIT_EXHAUSTED = 3


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def slugify(text: str, limit: int = 32) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "task"


def run_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id


class StoreDecisions:
    """Approvals and stop requests, read from commands other terminals put in the store."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.stop_all = threading.Event()
        self._stopped: set[str] = set()
        self._verdicts: dict[str, bool] = {}
        self._lock = threading.Lock()

    def poll(self) -> None:
        with self._lock:
            for cmd in self.store.pending(self.run_id):
                if cmd.command == "stop" and cmd.agent_id is None:
                    self.stop_all.set()
                elif cmd.command == "stop" and cmd.agent_id:
                    self._stopped.add(cmd.agent_id)
                elif cmd.command in ("approve", "reject") and cmd.agent_id:
                    self._verdicts[cmd.agent_id] = cmd.command == "approve"
                self.store.mark_done(cmd.id)

    def stop_requested(self, agent_id: str) -> bool:
        self.poll()
        return self.stop_all.is_set() or agent_id in self._stopped

    def approval(self, agent_id: str) -> bool | None:
        self.poll()
        return self._verdicts.get(agent_id)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    records: tuple[AgentRecord, ...]
    spent_usd: float
    budget_usd: float
    report_path: Path
    exit_code: int


class Supervisor:
    """Runs the tasks of one `RunConfig` to completion."""

    def __init__(
        self, config: RunConfig, run_id: str, *, backend: Backend, model: Model, price: Price,
        store: Store, log: Any,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.backend = backend
        self.model = model
        self.price = price
        self.store = store
        self.log = log.bind(run=run_id)
        self.dir = run_dir(config.state_dir, run_id)
        self.decisions = StoreDecisions(store, run_id)

    def run(self) -> RunResult:
        """Preflight, run every task, write the report. Raises FreshError only before anything starts."""
        policy = self.config.policy
        user = gitops.inspect_user_repo(self.config.repo, state_dir_name=self.config.state_dir.name)
        self.backend.preflight(policy.image)
        self.dir.mkdir(parents=True, exist_ok=True)
        run_repo = gitops.create_run_repo(user, self.dir / "origin.git")
        started = time.monotonic()
        self.store.start_run(self.run_id, str(user.path), policy.budget_usd, os.getpid(), {
            "model": policy.model, "policy": policy.name, "base_commit": user.head,
            "tasks": [t.title for t in self.config.tasks],
        })
        self.log.info("run_started", repo=str(user.path), base_commit=user.head, model=policy.model,
                      budget_usd=policy.budget_usd, agents=min(policy.agents, len(self.config.tasks)),
                      tasks=len(self.config.tasks), policy=policy.name)
        ledger = Ledger(policy.budget_usd)
        ctx = AgentContext(
            config=self.config, run_id=self.run_id, backend=self.backend, model=self.model,
            price=self.price, ledger=ledger, run_repo=run_repo, base_commit=user.head,
            remote_url=user.remote_url, decisions=self.decisions,
            on_change=self._persist, run_deadline=started + policy.hours * 3600,
        )
        records = self._records(ledger)
        with self._signals():
            with ThreadPoolExecutor(max_workers=min(policy.agents, len(records)),
                                    thread_name_prefix="agent") as pool:
                done = list(pool.map(lambda rec: AgentRunner(ctx, rec, self.log).run(), records))
        return self._finish(done, ledger)

    def _records(self, ledger: Ledger) -> list[AgentRecord]:
        records = []
        for index, task in enumerate(self.config.tasks, start=1):
            agent_id = f"a{index}"
            branch = f"fresh/{self.run_id}/{agent_id}-{slugify(task.title)}"
            ledger.open_account(agent_id, self.config.agent_budget_usd)
            rec = AgentRecord(agent_id=agent_id, task=task, branch=branch)
            self._persist(rec)
            records.append(rec)
        return records

    def _persist(self, rec: AgentRecord) -> None:
        self.store.upsert_agent(self.run_id, {
            "agent_id": rec.agent_id, "task": rec.task.title, "branch": rec.branch,
            "state": str(rec.state), "reason": rec.reason, "cost_usd": rec.cost_usd,
            "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
            "steps": rec.steps, "container_id": rec.container_id, "tip": rec.tip,
            "pushed": int(rec.pushed), "tests_passed": int(rec.tests_passed), "started_at": rec.started_at,
        })

    def _signals(self) -> Any:
        supervisor = self

        class _Handler:
            def __enter__(self) -> None:
                self.previous: dict[int, Any] = {}
                if threading.current_thread() is not threading.main_thread():
                    return
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.previous[sig] = signal.signal(sig, self._handle)

            def _handle(self, signum: int, _frame: Any) -> None:
                if supervisor.decisions.stop_all.is_set():
                    supervisor.log.warning("second_interrupt_exiting")
                    os._exit(130)
                supervisor.log.warning("stopping", signal=signal.Signals(signum).name)
                supervisor.decisions.stop_all.set()

            def __exit__(self, *exc: object) -> None:
                for sig, handler in self.previous.items():
                    signal.signal(sig, handler)

        return _Handler()

    def _finish(self, records: list[AgentRecord], ledger: Ledger) -> RunResult:
        spent = ledger.spent_usd
        budget = self.config.policy.budget_usd
        path = report.write(self.dir, self.run_id, records, spent_usd=spent, budget_usd=budget,
                            model=self.config.policy.model)
        exit_code = outcome_exit_code(records)
        status = {EXIT_OK: "finished", EXIT_AGENTS_FAILED: "finished_with_failures",
                  EXIT_EXHAUSTED: "exhausted"}.get(exit_code, "finished")
        self.store.end_run(self.run_id, status, spent)
        self.log.info("run_finished", status=status, spent_usd=round(spent, 6), budget_usd=budget,
                      pushed=sum(r.pushed for r in records), agents=len(records), report=str(path))
        return RunResult(self.run_id, tuple(records), spent, budget, path, exit_code)


def outcome_exit_code(records: list[AgentRecord]) -> int:
    """0 when every agent pushed (or waits on a person), 3 when a limit ran out, else 1."""
    states = {r.state for r in records}
    if states & {State.BUDGET_EXHAUSTED, State.TIMED_OUT}:
        return EXIT_EXHAUSTED
    if states <= {State.PUSHED, State.AWAITING_APPROVAL, State.NO_CHANGES}:
        return EXIT_OK if State.NO_CHANGES not in states else EXIT_AGENTS_FAILED
    return EXIT_AGENTS_FAILED
