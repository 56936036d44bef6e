"""The run: preflight, one thread per running agent, control commands, report.

The supervisor owns everything shared by the agents of a run (the ledger, the
store, the run repository) and hands each agent an `AgentContext`. One agent's
failure ends only that agent. Data flows one way: agents return records; the
supervisor persists them and writes the report.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator import gitops, report
from orchestrator.agent import AgentRunner
from orchestrator.lifecycle import FINAL_STATES, AgentContext, AgentRecord, State
from orchestrator.budget import Ledger, LedgerEntry, worst_case_usd
from orchestrator.config import RunConfig, TaskSpec
from orchestrator.errors import FreshError, PreflightError
from orchestrator.model import Model
from orchestrator.prices import Price
from orchestrator.control import StoreDecisions
from orchestrator.store import Store
from orchestrator.tools import TOOL_SCHEMAS
from sandbox.base import Backend, Sandbox, SandboxError

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
        self.schedule = config.policy.run_schedule()
        self._started_any = False
        self._exhausted = False  # the run's time or window ran out
        self._base_commit: str | None = None
        self._ledger: Ledger | None = None

    def run(self) -> RunResult:
        """Preflight, run every task, write the report. Raises FreshError only before anything starts."""
        policy = self.config.policy
        user = gitops.inspect_user_repo(self.config.repo, state_dir_name=self.config.state_dir.name)
        self.backend.preflight(policy.image)
        self.dir.mkdir(parents=True, exist_ok=True)
        run_repo = gitops.create_run_repo(user, self.dir / "origin.git")
        self._base_commit = user.head
        started = time.monotonic()
        self.store.start_run(self.run_id, str(user.path), policy.budget_usd, os.getpid(), {
            "model": policy.model, "policy": policy.name, "base_commit": user.head,
            "base_branch": user.branch, "tasks": [t.title for t in self.config.tasks],
            "hours": policy.hours, "deadline": time.time() + policy.hours * 3600, "agents": policy.agents,
            **config_snapshot(self.config, self.price),
        })
        self.log.info("run_started", repo=str(user.path), base_commit=user.head, model=policy.model,
                      budget_usd=policy.budget_usd, agents=min(policy.agents, len(self.config.tasks)),
                      tasks=len(self.config.tasks), policy=policy.name, schedule=policy.schedule)
        ledger = self._ledger = Ledger(policy.budget_usd, on_change=self._persist_ledger)
        ctx = AgentContext(
            config=self.config, run_id=self.run_id, backend=self.backend, model=self.model,
            price=self.price, ledger=ledger, run_repo=run_repo, base_commit=user.head,
            remote_url=user.remote_url, base_branch=user.branch, decisions=self.decisions,
            on_change=self._persist, run_deadline=started + policy.hours * 3600,
        )
        records = self._records(ledger)
        runners = [AgentRunner(ctx, rec, self.log) for rec in records if rec.state == State.QUEUED]
        with self._signals():
            self._drive(runners, {}, ledger, ctx.run_deadline)
        return self._finish(records, ledger)

    def resume(self) -> RunResult:
        """Continue a run whose supervisor died: re-attach or reap its containers, keep the ledger exact."""
        info = self.store.run(self.run_id)
        if info is None:
            raise PreflightError(f"no run {self.run_id}", hint="`fresh-sandbox status` shows the latest run")
        details = json.loads(info["info"])
        self._base_commit = details["base_commit"]
        user = gitops.inspect_user_repo(self.config.repo, state_dir_name=self.config.state_dir.name,
                                        require_clean=False)
        self.backend.preflight(self.config.policy.image)
        run_repo = self.dir / "origin.git"
        self.store.set_status(self.run_id, "running", os.getpid())
        elapsed = time.time() - float(info["started_at"])
        deadline = time.monotonic() + max(0.0, self.config.policy.hours * 3600 - elapsed)
        ledger = self._ledger = Ledger(self.config.policy.budget_usd, on_change=self._persist_ledger,
                                       first_seq=self.store.last_ledger_seq(self.run_id) + 1)
        spent = self.store.spent_by_agent(self.run_id)
        ctx = AgentContext(
            config=self.config, run_id=self.run_id, backend=self.backend, model=self.model,
            price=self.price, ledger=ledger, run_repo=run_repo, base_commit=details["base_commit"],
            remote_url=user.remote_url, base_branch=details.get("base_branch", user.branch),
            decisions=self.decisions, on_change=self._persist, run_deadline=deadline,
        )
        runners, waiting, finished = [], {}, []
        for row in self.store.agents(self.run_id):
            ledger.open_account(row["agent_id"], self.config.agent_budget_usd)
            ledger.preload(row["agent_id"], spent.get(row["agent_id"], 0.0))
            rec = record_from_row(row, self.config.tasks)
            rec.cost_usd = spent.get(row["agent_id"], 0.0)
            if rec.state in FINAL_STATES:
                finished.append(rec)
                continue
            runner = AgentRunner(ctx, rec, self.log, sandbox=self._reattach(rec))
            if rec.state == State.AWAITING_APPROVAL:
                waiting[rec.agent_id] = runner
            else:
                runners.append(runner)
        kept = [r.sandbox.id for r in [*runners, *waiting.values()] if r.sandbox is not None]
        reaped = self.backend.reap(self.run_id, keep=kept)
        self.log.info("run_resumed", agents=len(runners), awaiting=len(waiting), finished=len(finished),
                      reattached=len(kept), reaped=reaped, spent_usd=round(ledger.spent_usd, 6))
        with self._signals():
            self._drive(runners, waiting, ledger, deadline)
        records = finished + [r.rec for r in [*runners, *waiting.values()]]
        return self._finish(sorted(records, key=lambda r: int(r.agent_id[1:])), ledger)

    def _reattach(self, rec: AgentRecord) -> Sandbox | None:
        """The agent's surviving container, if it still runs; None means start a new one."""
        # Only a sandbox past its setup is trusted again: one cut off mid-setup may still be on a network.
        if not rec.container_id or rec.state not in (State.ANALYSIS, State.IMPLEMENTATION,
                                                     State.AWAITING_APPROVAL):
            return None
        try:
            sandbox = self.backend.attach(rec.container_id)
        except SandboxError:
            return None
        return sandbox if sandbox.is_running() else None

    # -- the main loop -------------------------------------------------------
    def _drive(self, runners: list[AgentRunner], waiting: dict[str, AgentRunner], ledger: Ledger,
               deadline: float) -> None:
        """Start agents while slots, budget, time and the run window allow; settle approvals."""
        queue = deque(runners)
        slots = min(self.config.policy.agents, len(runners)) or 1
        running: dict[Future[AgentRecord], AgentRunner] = {}
        finishing: dict[Future[AgentRecord], AgentRunner] = {}
        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="agent") as pool, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="push") as pushers:
            while queue or running or waiting or finishing:
                self._watch_limits(deadline)
                stopping = self.decisions.stop_all.is_set()
                if stopping:
                    reason = self.decisions.stop_reason("") or "stopped"
                    while queue:
                        queue.popleft().skip(State.STOPPED, f"not started: {reason}")
                elif self._may_start():
                    deferred: list[AgentRunner] = []
                    while queue and len(running) < slots:
                        runner = queue.popleft()
                        if self._conflicts(runner, running.values()):
                            deferred.append(runner)  # waits until the agent touching its files ends
                            continue
                        shortfall = self._unaffordable(runner, ledger)
                        if shortfall:
                            runner.skip(State.BUDGET_EXHAUSTED, shortfall)
                            continue
                        running[pool.submit(runner.run)] = runner
                    queue.extendleft(reversed(deferred))
                for agent_id, runner in list(waiting.items()):
                    verdict = self.decisions.approval(agent_id)
                    stop = self.decisions.stop_reason(agent_id)
                    if verdict is not None or stop:
                        del waiting[agent_id]
                        finishing[pushers.submit(runner.conclude, verdict, stop or "")] = runner
                if not (running or finishing):
                    threading.Event().wait(0.25)
                    continue
                ready, _ = wait([*running, *finishing], timeout=0.25, return_when=FIRST_COMPLETED)
                for future in ready:
                    runner = running.pop(future) if future in running else finishing.pop(future)
                    if runner.rec.state == State.AWAITING_APPROVAL:
                        waiting[runner.rec.agent_id] = runner
                self.store.set_spent(self.run_id, ledger.spent_usd)

    def _conflicts(self, runner: AgentRunner, running: Any) -> bool:
        """Whether the policy serialises tasks whose files of interest overlap, and this one does."""
        files = set(runner.rec.task.files)
        if not (self.config.policy.serialise_overlapping and files):
            return False
        return any(files & set(other.rec.task.files) for other in running)

    def _watch_limits(self, deadline: float) -> None:
        """Turn the run's deadline and a closing run window into a drain."""
        if self.decisions.stop_all.is_set():
            return
        if time.monotonic() > deadline:
            self.log.warning("run_deadline_reached")
            self._exhausted = True
            self.decisions.stop_run("the run's time limit was reached; work kept")
        elif not self.schedule.is_open(datetime.now()) and self._started_any:
            self.log.warning("run_window_closed", schedule=self.schedule.mode)
            self._exhausted = True
            self.decisions.stop_run("the run window closed; work kept")

    def _may_start(self) -> bool:
        """New agents start only while the run window is open and the run is not paused."""
        if self.decisions.run_paused:
            return False
        if not self.schedule.is_open(datetime.now()):
            if not self._started_any:
                opens = self.schedule.next_change(datetime.now())
                self.log.info("waiting_for_window", opens=opens.isoformat() if opens else None)
            return False
        self._started_any = True
        return True

    def _unaffordable(self, runner: AgentRunner, ledger: Ledger) -> str:
        """Why the remaining budget cannot cover a minimum useful run of this agent ('' if it can)."""
        policy = self.config.policy
        first = worst_case_usd(runner.first_messages(), TOOL_SCHEMAS, self.model.max_output_tokens, self.price)
        needed = first * policy.min_useful_calls
        remaining = min(ledger.remaining_usd, self.config.agent_budget_usd)
        if remaining >= needed:
            return ""
        self.log.warning("agent_not_started", agent=runner.rec.agent_id, needed_usd=round(needed, 6),
                         remaining_usd=round(remaining, 6))
        return (f"not started: ${remaining:.4f} left cannot cover {policy.min_useful_calls} calls "
                f"(${needed:.4f})")

    # -- persistence -----------------------------------------------------------
    def _records(self, ledger: Ledger) -> list[AgentRecord]:
        records = []
        from orchestrator.tasks.claims import claim

        for index, task in enumerate(self.config.tasks, start=1):
            agent_id = f"a{index}"
            branch = f"fresh/{self.run_id}/{agent_id}-{slugify(task.title)}"
            ledger.open_account(agent_id, self.config.agent_budget_usd)
            rec = AgentRecord(agent_id=agent_id, task=task, branch=branch)
            if task.key and not claim(self.store.path, self.run_id, task.key, agent_id):
                rec.state, rec.reason = State.STOPPED, "not started: another run claimed this task"
            self._persist(rec)
            records.append(rec)
        return records

    def _persist(self, rec: AgentRecord) -> None:
        self.store.upsert_agent(self.run_id, {
            "agent_id": rec.agent_id, "task": rec.task.title, "branch": rec.branch,
            "state": str(rec.state), "reason": rec.reason, "cost_usd": rec.cost_usd,
            "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
            "steps": rec.steps, "container_id": rec.container_id, "tip": rec.tip,
            "pushed": int(rec.pushed), "tests_passed": int(rec.tests_passed), "summary": rec.summary,
            "started_at": rec.started_at,
        })

    def _persist_ledger(self, entry: LedgerEntry) -> None:
        if entry.kind != "open":
            self.store.record_ledger(self.run_id, entry.seq, entry.kind, entry.agent_id,
                                     entry.reservation_id, entry.usd)

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
                    supervisor.abandon()
                    os._exit(130)
                supervisor.log.warning("stopping", signal=signal.Signals(signum).name)
                supervisor.decisions.stop_run(f"stopped by {signal.Signals(signum).name}; work kept")

            def __exit__(self, *exc: object) -> None:
                for sig, handler in self.previous.items():
                    signal.signal(sig, handler)

        return _Handler()

    def abandon(self) -> None:
        """Record the run as interrupted before an immediate exit; `recover` picks it up."""
        spent = self._ledger.spent_usd + self._ledger.reserved_usd if self._ledger else 0.0
        self.store.end_run(self.run_id, "interrupted", spent)

    def _overlaps(self, records: list[AgentRecord]) -> list[tuple[str, str, set[str]]]:
        from orchestrator.tasks.claims import overlapping

        if self._base_commit is None:
            return []
        try:
            changes = changed_by_agent(self.dir / "origin.git", self._base_commit, records)
        except FreshError as exc:
            self.log.warning("overlap_check_failed", error=str(exc))
            return []
        found = overlapping(changes)
        for first, second, files in found:
            self.log.warning("agents_overlap", agents=[first, second], files=sorted(files)[:20])
        return found

    def _finish(self, records: list[AgentRecord], ledger: Ledger) -> RunResult:
        if not self.config.keep_containers:
            # Safety net: nothing of this run outlives it but sandboxes a person may still look at.
            self.backend.reap(self.run_id, keep=[r.container_id for r in records
                                                 if r.state == State.AWAITING_APPROVAL and r.container_id])
        spent = ledger.spent_usd
        budget = self.config.policy.budget_usd
        path = report.write(self.dir, self.run_id, records, spent_usd=spent, budget_usd=budget,
                            model=self.config.policy.model, overlaps=self._overlaps(records))
        exit_code = EXIT_EXHAUSTED if self._exhausted else outcome_exit_code(records)
        status = {EXIT_OK: "finished", EXIT_AGENTS_FAILED: "finished_with_failures",
                  EXIT_EXHAUSTED: "exhausted"}.get(exit_code, "finished")
        self.store.end_run(self.run_id, status, spent)
        self.log.info("run_finished", status=status, spent_usd=round(spent, 6), budget_usd=budget,
                      pushed=sum(r.pushed for r in records), agents=len(records), report=str(path))
        return RunResult(self.run_id, tuple(records), spent, budget, path, exit_code)


def changed_by_agent(run_repo: Path, base: str, records: list[AgentRecord]) -> dict[str, set[str]]:
    """The files each agent's imported work changes, read from the host-owned run repository."""
    changes: dict[str, set[str]] = {}
    for rec in records:
        if rec.tip:
            changes[rec.agent_id] = {path for _, path in gitops.changed_files(run_repo, base, rec.tip)}
    return changes


def config_snapshot(config: RunConfig, price: Price) -> dict[str, Any]:
    """What `resume` needs to rebuild the run's configuration."""
    return {
        "policy_full": config.policy.model_dump(),
        "task_specs": [{"title": t.title, "description": t.description, "kind": t.kind, "key": t.key,
                        "files": list(t.files)} for t in config.tasks],
        "keep_containers": config.keep_containers,
        "price": [price.input_per_mtok, price.output_per_mtok],
    }


def record_from_row(row: dict[str, Any], tasks: tuple[TaskSpec, ...]) -> AgentRecord:
    """Rebuild an agent's record from the store after a crash."""
    by_title = {t.title: t for t in tasks}
    return AgentRecord(
        agent_id=row["agent_id"], task=by_title.get(row["task"], TaskSpec(title=row["task"])),
        branch=row["branch"], state=State(row["state"]), reason=row["reason"], summary=row["summary"],
        container_id=row["container_id"], tip=row["tip"], pushed=bool(row["pushed"]),
        tests_passed=bool(row["tests_passed"]), prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"], steps=row["steps"], started_at=row["started_at"],
    )


def outcome_exit_code(records: list[AgentRecord]) -> int:
    """0 when every agent pushed (or waits on a person), 3 when a limit ran out, else 1."""
    states = {r.state for r in records}
    if states & {State.BUDGET_EXHAUSTED, State.TIMED_OUT}:
        return EXIT_EXHAUSTED
    if states <= {State.PUSHED, State.AWAITING_APPROVAL, State.NO_CHANGES}:
        return EXIT_OK if State.NO_CHANGES not in states else EXIT_AGENTS_FAILED
    return EXIT_AGENTS_FAILED
