"""Operator commands (logs, inspect, shell, diff, dashboard, doctor) registered on the main app.

They only read: the store, the run's events file, the host-owned run repository
and `docker inspect`. Git runs in the run repository only, never in a clone an
agent wrote. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from orchestrator.cli import RepoOpt, StateOpt, _open_store, _state_dir, app, friendly
from orchestrator.errors import ConfigError, PreflightError

RunOpt = typer.Option(None, "--run", help="Run id (default: the latest).")


def _find_run(store: Any, run: Optional[str]) -> dict[str, Any]:
    info = store.run(run)
    if info is None:
        raise PreflightError(f"no run {run!r}" if run else "no runs yet",
                             hint="`fresh-sandbox status` shows the latest run")
    info["info"] = json.loads(info.get("info") or "{}")
    return dict(info)


def _pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_over_check(store: Any, run_id: str) -> Callable[[], bool]:
    """A check that says whether the run has ended (or its supervisor died without saying so)."""
    def over() -> bool:
        info = store.run(run_id)
        return info is None or info["status"] != "running" or not _pid_alive(info["pid"])
    return over


def _emit(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `logs | head`: the reader has gone
        os._exit(0)


@app.command()
@friendly
def logs(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing events until the run ends."),
    run: Optional[str] = RunOpt,
    agent: Optional[str] = typer.Option(None, "--agent", help="Only this agent's events (e.g. a1)."),
    event: Optional[str] = typer.Option(None, "--event", help="Only events of this name (e.g. tool_call)."),
    level: Optional[str] = typer.Option(None, "--level", help="Minimum level: debug, info, warning, error."),
    as_json: bool = typer.Option(False, "--json", help="Raw JSON lines (the default when stdout is not a TTY)."),
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
) -> None:
    """Show the events of a run (the latest by default); -f follows it while it runs."""
    from orchestrator import logview

    try:
        wanted = logview.EventFilter(agent=agent, event=event, level=level)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="--level takes debug, info, warning, error or critical") from None
    store = _open_store(repo, state_dir)
    info = _find_run(store, run)
    path = logview.events_path(_state_dir(repo, state_dir), info["run_id"])
    raw = as_json or not sys.stdout.isatty()
    if follow:
        stream = logview.follow(path, run_over_check(store, info["run_id"]))
    else:
        if not path.exists():
            raise PreflightError(f"run {info['run_id']} has no events file", hint=f"expected {path}")
        stream = iter(logview.read_events(path))
    try:
        for item in wanted.apply(stream):
            _emit(logview.format_event(item, as_json=raw))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
