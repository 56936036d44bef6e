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

from orchestrator.cli import RepoOpt, StateOpt, open_store, state_dir_of, app, friendly
from orchestrator.errors import ConfigError, PreflightError
from orchestrator.store import pid_alive

RunOpt = typer.Option(None, "--run", help="Run id (default: the latest).")


def _find_run(store: Any, run: Optional[str]) -> dict[str, Any]:
    info = store.run(run)
    if info is None:
        raise PreflightError(f"no run {run!r}" if run else "no runs yet",
                             hint="`fresh-sandbox status` shows the latest run")
    info["info"] = json.loads(info.get("info") or "{}")
    return dict(info)


def run_over_check(store: Any, run_id: str) -> Callable[[], bool]:
    """A check that says whether the run has ended (or its supervisor died without saying so)."""
    def over() -> bool:
        info = store.run(run_id)
        return info is None or info["status"] != "running" or not pid_alive(info["pid"])
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
    store = open_store(repo, state_dir)
    info = _find_run(store, run)
    path = logview.events_path(state_dir_of(repo, state_dir), info["run_id"])
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


# -- one agent -----------------------------------------------------------------

def _find_agent(store: Any, agent_id: str, run: Optional[str]) -> dict[str, Any]:
    if run is None:
        row = store.find_agent(agent_id)
    else:
        row = next((a for a in store.agents(_find_run(store, run)["run_id"]) if a["agent_id"] == agent_id), None)
    if row is None:
        raise PreflightError(f"no agent {agent_id!r}" + (f" in run {run}" if run else ""),
                             hint="`fresh-sandbox status` lists the agents of the latest run")
    return dict(row)


def _run_repo(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id / "origin.git"


def agent_diff(run_repo: Path, base: str, tip: str, *, stat: bool = False) -> str:
    """The agent's changes base..tip, computed in the host-owned run repository."""
    from orchestrator import gitops

    if stat:
        return gitops.diff_stat(run_repo, base, tip)
    return gitops.git("diff", "--no-ext-diff", "--no-color", "--no-textconv", base, tip, cwd=run_repo)


def describe_container(container_id: str) -> dict[str, Any]:
    """What Docker says about the agent's container, or its state as "removed" / "unknown"."""
    from sandbox.base import SandboxError, SandboxGone
    from sandbox.docker import DockerBackend

    if not container_id:
        return {"id": None, "state": "none"}
    try:
        return DockerBackend().attach(container_id).describe()
    except SandboxGone:
        return {"id": container_id, "state": "removed"}
    except SandboxError as exc:
        return {"id": container_id, "state": "unknown", "error": exc.message}


def _report_entry(run_dir: Path, agent_id: str) -> dict[str, Any] | None:
    path = run_dir / "report.json"
    if not path.exists():
        return None
    agents = json.loads(path.read_text(encoding="utf-8")).get("agents", [])
    return next((dict(a) for a in agents if a.get("agent_id") == agent_id), None)


def _tests_from_events(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    finished = [e for e in events if e.get("event") == "tests_finished"]
    if not finished:
        return None
    last = finished[-1]
    return {k: last.get(k) for k in ("passed", "reason", "exit_code", "tests", "failures", "errors", "duration_s")}


def agent_details(store: Any, state_dir: Path, agent_id: str, run: Optional[str] = None) -> dict[str, Any]:
    """Everything `inspect` shows about one agent, as plain data."""
    from orchestrator import logview

    row = _find_agent(store, agent_id, run)
    info = _find_run(store, row["run_id"])
    run_dir = state_dir / "runs" / row["run_id"]
    base, tip = info["info"].get("base_commit", ""), row["tip"]
    events = [e for e in logview.read_events(run_dir / "events.jsonl") if e.get("agent") == agent_id]
    entry = _report_entry(run_dir, agent_id)
    return {
        **{k: row[k] for k in ("agent_id", "run_id", "task", "state", "reason", "branch", "steps",
                               "cost_usd", "prompt_tokens", "completion_tokens", "started_at", "updated_at")},
        "pushed": bool(row["pushed"]), "tests_passed": bool(row["tests_passed"]),
        "base_commit": base, "tip": tip or None,
        "diff_stat": agent_diff(_run_repo(state_dir, row["run_id"]), base, tip, stat=True) if base and tip else "",
        "tests": entry["tests"] if entry else _tests_from_events(events),
        "summary": row.get("summary") or (entry or {}).get("summary") or next(
            (e.get("summary", "") for e in reversed(events) if e.get("event") == "submitted"), ""),
        "container": describe_container(row["container_id"]),
        "events": events[-10:],
    }


def _print_details(d: dict[str, Any]) -> None:
    from orchestrator.events import render_pretty
    from orchestrator.tools import strip_control

    c = d["container"]
    tests = d["tests"]
    lines = [
        f"agent {d['agent_id']} of run {d['run_id']}: {d['state']}" + (f" ({d['reason']})" if d["reason"] else ""),
        f"  task      {d['task']}",
        f"  branch    {d['branch']}  tip {(d['tip'] or '-')[:12]}  pushed {'yes' if d['pushed'] else 'no'}",
        f"  cost      ${d['cost_usd']:.4f}  tokens {d['prompt_tokens']} in / {d['completion_tokens']} out"
        f"  steps {d['steps']}",
        "  tests     " + ("-" if not tests else
                          f"{tests['reason']} ({tests['tests']} tests, {tests['failures']} failures, "
                          f"{tests['errors']} errors)"),
        f"  container {(c.get('id') or '-')[:12]} {c['state']}",
    ]
    if "image" in c:
        lim = c["limits"]
        lines += [f"            image {c['image']}  network {c['network_mode']}  runtime {c['runtime']}",
                  f"            cpus {lim['cpus']}  memory {lim['memory_mb']} MiB  pids {lim['pids']}  "
                  f"tmpfs {', '.join(f'{k} ({v})' for k, v in lim['tmpfs'].items())}"]
    if d["summary"]:
        lines.append(f"  summary   {d['summary']}")
    if d["diff_stat"]:
        lines += ["  diff"] + [f"    {line}" for line in d["diff_stat"].splitlines()]
    lines += ["  last events"] + [f"    {render_pretty(e)}" for e in d["events"]]
    typer.echo("\n".join(strip_control(line) for line in lines))


@app.command()
@friendly
def inspect(
    agent_id: str = typer.Argument(..., help="Agent id, e.g. a1."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id (default: the newest run with this agent)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
) -> None:
    """Show one agent: its container, branch, diff stat, tests, cost and last events."""
    details = agent_details(open_store(repo, state_dir), state_dir_of(repo, state_dir), agent_id, run)
    if as_json:
        typer.echo(json.dumps(details, indent=2, default=str))
    else:
        _print_details(details)


@app.command()
@friendly
def diff(
    agent_id: str = typer.Argument(..., help="Agent id, e.g. a1."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id (default: the newest run with this agent)."),
    stat: bool = typer.Option(False, "--stat", help="Only the diffstat."),
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
) -> None:
    """Print the agent's diff against the run's base commit (from the run repository)."""
    store = open_store(repo, state_dir)
    row = _find_agent(store, agent_id, run)
    base = _find_run(store, row["run_id"])["info"].get("base_commit", "")
    if not row["tip"] or not base:
        raise PreflightError(f"{agent_id} has no imported work yet",
                             hint="work is imported when the agent submits or stops")
    text = agent_diff(_run_repo(state_dir_of(repo, state_dir), row["run_id"]), base, row["tip"], stat=stat)
    _emit(text)


@app.command()
@friendly
def shell(
    agent_id: str = typer.Argument(..., help="Agent id, e.g. a1."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id (default: the newest run with this agent)."),
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
) -> None:
    """Open an interactive shell in the agent's container, as the agent user, in its clone."""
    import shutil

    from sandbox.base import AGENT_USER, REPO_DIR, SandboxGone
    from sandbox.docker import DockerBackend

    row = _find_agent(open_store(repo, state_dir), agent_id, run)
    gone = PreflightError(
        f"the container of {agent_id} is gone",
        hint="containers are removed when an agent ends: start the run with --keep to keep them, "
             "or open the shell while the agent is awaiting approval")
    if not row["container_id"]:
        raise PreflightError(f"{agent_id} has no container yet", hint="wait until it has started")
    try:
        sandbox = DockerBackend().attach(row["container_id"])
    except SandboxGone:
        raise gone from None
    if not sandbox.is_running():
        raise gone
    docker = shutil.which("docker")
    if docker is None:
        raise PreflightError("the docker command is not installed", hint="install the Docker CLI")
    sys.stdout.flush()
    os.execvp(docker, ["docker", "exec", "-it", "-u", AGENT_USER, "-w", str(REPO_DIR), sandbox.id, "bash"])


# -- the run as a whole -------------------------------------------------------

@app.command()
@friendly
def dashboard(run: Optional[str] = RunOpt, repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """A live view of a run started elsewhere (plain lines when there is no terminal)."""
    from orchestrator import dashboard as view
    from orchestrator.logview import events_path

    store = open_store(repo, state_dir)
    run_id = _find_run(store, run)["run_id"]

    def read_state() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return _find_run(store, run_id), store.agents(run_id)

    try:
        view.follow(read_state, events_path(state_dir_of(repo, state_dir), run_id),
                    run_over=run_over_check(store, run_id))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
@friendly
def doctor(
    repo: Path = RepoOpt,
    model: Optional[str] = typer.Option(None, help="Model name (default from the policy)."),
    price: Optional[str] = typer.Option(None, help="Price of a model missing from the table: IN/OUT USD per million tokens."),
    policy: Optional[str] = typer.Option(None, help="Policy name or file (default: default)."),
) -> None:
    """Check Docker, the images, the model endpoint and price, the git remote and the token."""
    from orchestrator import doctor as checks
    from orchestrator.config import load_policy
    from orchestrator.prices import Price

    effective = load_policy(policy)
    overrides = {name: Price(p.input, p.output) for name, p in effective.prices.items()}
    results = checks.run_all(repo, image=effective.image, runtime=effective.runtime,
                             model=model or effective.model, cli_price=price, price_overrides=overrides)
    colors = {checks.OK: "green", checks.WARN: "yellow", checks.FAIL: "red"}
    for c in results:
        mark = typer.style(f"{c.status:<4}", fg=colors[c.status], bold=True)
        typer.echo(f"{mark} {c.name:<15} {c.detail}")
        if c.fix and c.status != checks.OK:
            typer.echo(f"     {'':<15} fix: {c.fix}")
    if checks.failed(results):
        raise typer.Exit(1)
