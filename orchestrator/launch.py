"""Wire one run together: events, store, backend, supervisor. Shared by `start`, `recover` and `demo`."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator import events, gitops
from orchestrator.config import RunConfig, TaskSpec, parse_policy
from orchestrator.errors import PreflightError
from orchestrator.model import Model
from orchestrator.prices import Price
from orchestrator.replay import RecordingModel, ReplayModel, recording_path
from orchestrator.store import Store, pid_alive
from orchestrator.supervisor import RunResult, Supervisor, new_run_id, run_dir


def console_mode(output: str) -> str:
    """`auto` means readable lines on a terminal, JSON lines when piped."""
    return output if output != "auto" else ("pretty" if sys.stderr.isatty() else "json")


def launch_run(config: RunConfig, price: Price, model: Model, *, output: str = "auto",
               backend: Any = None, resume_run: str | None = None, live: bool = False) -> RunResult:
    """Run (or resume) a run to its end and return its result; FreshError before anything starts.

    With `live`, a dashboard thread shows the run and console event lines are kept quiet.
    """
    from sandbox.docker import DockerBackend

    if resume_run is None:
        gitops.inspect_user_repo(config.repo, state_dir_name=config.state_dir.name)  # fail before any file
    check = getattr(model, "preflight", None)
    if callable(check):
        check()  # an unreachable endpoint or a refused key stops the run before anything is created
    run_id = resume_run or new_run_id()
    if not isinstance(model, ReplayModel):  # every run records its model traffic, for replay
        model = RecordingModel(model, recording_path(config.state_dir, run_id),
                               meta={"price": [price.input_per_mtok, price.output_per_mtok]})
    events.configure(run_dir(config.state_dir, run_id) / "events.jsonl", secrets=config.secrets,
                     console="quiet" if live else console_mode(output))
    store = Store(config.state_dir / "state.db")
    done = threading.Event()
    view = start_live_view(config, run_id, done) if live else None
    try:
        supervisor = Supervisor(config, run_id, backend=backend or DockerBackend(), model=model, price=price,
                                store=store, log=events.get_logger())
        return supervisor.resume() if resume_run else supervisor.run()
    finally:
        done.set()
        if view is not None:
            view.join(timeout=5)
        events.shutdown()
        store.close()


def start_live_view(config: RunConfig, run_id: str, done: threading.Event) -> threading.Thread:
    """The dashboard in a thread of its own, reading the store through its own connection."""
    from orchestrator import dashboard

    def read_state() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        run = viewer.run(run_id)
        if run is None:  # preflight has not recorded the run yet
            run = {"run_id": run_id, "status": "running", "budget_usd": config.policy.budget_usd,
                   "spent_usd": 0.0, "started_at": time.time(), "ended_at": None, "info": "{}"}
        run["info"] = json.loads(run["info"])
        return run, viewer.agents(run_id)

    def show() -> None:
        try:
            dashboard.follow(read_state, run_dir(config.state_dir, run_id) / "events.jsonl", run_over=done.is_set)
        finally:
            viewer.close()

    viewer = Store(config.state_dir / "state.db")
    thread = threading.Thread(target=show, name="dashboard", daemon=True)
    thread.start()
    return thread


def load_interrupted_run(state_dir: Path, run_id: str | None, secrets: tuple[str, ...]) -> tuple[str, RunConfig, Price]:
    """Rebuild the configuration of a run whose supervisor died, refusing one that is still alive."""
    db = state_dir / "state.db"
    if not db.exists():
        raise PreflightError(f"no runs under {state_dir}", hint="pass --repo or --state-dir of the run")
    store = Store(db)
    try:
        info = store.run(run_id)
    finally:
        store.close()
    if info is None:
        raise PreflightError(f"no run {run_id!r}", hint="`fresh-sandbox status` shows the latest run")
    if info["status"] == "running" and pid_alive(info["pid"]):
        raise PreflightError(f"run {info['run_id']} is still running (pid {info['pid']})",
                             hint="stop it first: `fresh-sandbox stop`")
    details = json.loads(info["info"])
    config = RunConfig(
        repo=Path(info["repo"]), state_dir=state_dir, policy=parse_policy(details["policy_full"], "stored run"),
        tasks=tuple(TaskSpec(**{**t, "files": tuple(t.get("files", ()))}) for t in details["task_specs"]),
        keep_containers=bool(details.get("keep_containers")), secrets=secrets,
    )
    price_in, price_out = details["price"]
    return info["run_id"], config, Price(price_in, price_out)

