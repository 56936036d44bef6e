"""The `fresh-sandbox` command line: parse, call one function, render.

Every user mistake becomes one line on stderr with a hint and a non-zero exit
code, never a traceback. Heavy modules (docker, openai, structlog) are imported
inside the commands that need them, so `status` and `--help` start fast.
"""

from __future__ import annotations

import json
import os
import sys
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer

from orchestrator.errors import ConfigError, FreshError, PreflightError

app = typer.Typer(
    name="fresh-sandbox", no_args_is_help=True, add_completion=False,
    help="Run autonomous coding agents against one repository, each in a hardened Docker sandbox, within a hard budget.",
)
images_app = typer.Typer(help="Build the sandbox images.", no_args_is_help=True)
policy_app = typer.Typer(help="Show policies.", no_args_is_help=True)
app.add_typer(images_app, name="images")
app.add_typer(policy_app, name="policy")

F = TypeVar("F", bound=Callable[..., Any])
SECRET_VARS = ("OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN")


def fail(message: str, hint: str = "", code: int = 2) -> None:
    """Print one error line (and a hint) and exit."""
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  hint: {hint}", err=True)
    raise typer.Exit(code)


def friendly(func: F) -> F:
    """Turn the project's errors into one line plus a hint and an exit code."""
    from sandbox.base import SandboxError

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FreshError as exc:
            fail(exc.message, exc.hint, exc.exit_code)
        except SandboxError as exc:
            fail(exc.message, exc.hint, 2)
    return wrapper  # type: ignore[return-value]


def state_dir_of(repo: Path, state_dir: Optional[Path]) -> Path:
    return (state_dir or repo.expanduser().resolve() / ".fresh").resolve()


def open_store(repo: Path, state_dir: Optional[Path], must_exist: bool = True) -> Any:
    from orchestrator.store import Store

    path = state_dir_of(repo, state_dir) / "state.db"
    if must_exist and not path.exists():
        raise PreflightError(f"no runs found under {path.parent}",
                             hint="start one with `fresh-sandbox start`, or pass --repo / --state-dir")
    return Store(path)


RepoOpt = typer.Option(Path("."), "--repo", "-r", help="The target git repository.")
StateOpt = typer.Option(None, "--state-dir", help="Where runs are kept (default: REPO/.fresh).")


@images_app.command("build")
@friendly
def images_build(
    base_image: Optional[str] = typer.Option(None, help="Build FROM this image (needs a registry); default: a Debian base built offline with debootstrap."),
    extra_ca: Optional[Path] = typer.Option(None, help="A CA bundle to trust inside the images (TLS-intercepting proxies)."),
    force: bool = typer.Option(False, help="Rebuild even when the images exist."),
) -> None:
    """Build the agent image (and, without a registry, its Debian base)."""
    from sandbox.images import build_images

    if extra_ca is not None and not extra_ca.is_file():
        raise ConfigError(f"--extra-ca {extra_ca} is not a file", hint="pass the path of a PEM bundle")
    build_images(base_image=base_image, extra_ca=extra_ca, force=force, log=lambda msg: typer.echo(msg, err=True))


@policy_app.command("show")
@friendly
def policy_show(policy: str = typer.Argument("default", help="A shipped policy name or a .toml path.")) -> None:
    """Print the effective policy as JSON."""
    from orchestrator.config import load_policy

    typer.echo(json.dumps(load_policy(policy).model_dump(), indent=2))


@app.command()
@friendly
def start(
    repo: Path = RepoOpt,
    task: list[str] = typer.Option([], "--task", "-t", help="A task for one agent; repeat for more."),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks", help="A tasks file (TOML or YAML [[task]] entries)."),
    github_label: Optional[str] = typer.Option(None, "--github-label", help="Take open GitHub issues with this label as tasks."),
    model: Optional[str] = typer.Option(None, help="Model name (default from the policy)."),
    budget: Optional[float] = typer.Option(None, help="Run budget in USD; never exceeded."),
    agent_budget: Optional[float] = typer.Option(None, help="Per-agent budget cap in USD."),
    price: Optional[str] = typer.Option(None, help="Price of a model missing from the table: IN/OUT USD per million tokens."),
    agents: Optional[int] = typer.Option(None, help="Agents running at once (default 10)."),
    hours: Optional[float] = typer.Option(None, help="Wall-clock limit of the whole run."),
    policy: Optional[str] = typer.Option(None, help="Policy name or file (default: default)."),
    no_approval: bool = typer.Option(False, "--no-approval", help="Push when tests pass, without waiting for a person."),
    overnight: bool = typer.Option(False, "--overnight", help="Work only outside the policy's work hours; drain when they begin."),
    resume: bool = typer.Option(False, "--resume", help="Resume the latest run after a crash (same as `recover`)."),
    keep: bool = typer.Option(False, "--keep", help="Keep containers after the run."),
    state_dir: Optional[Path] = StateOpt,
    stream: bool = typer.Option(False, help="Stream model responses."),
    output: str = typer.Option("auto", "--output", help="Console events: auto, pretty, json or quiet."),
    non_interactive: bool = typer.Option(False, "--non-interactive", help="Headless: JSON events on stdout, no live view."),
) -> None:
    """Start agents on tasks; each works in its own sandbox and pushes only tested work."""
    from orchestrator.config import RunConfig, TaskSpec, load_policy, override
    from orchestrator.launch import launch_run
    from orchestrator.prices import Price, parse_price, resolve_price

    if non_interactive and output == "auto":
        output = "json"
    if resume:
        recover(None, repo, state_dir, stream, output)
        return
    if task and (tasks_file or github_label):
        raise ConfigError("--task cannot be combined with --tasks or --github-label", hint="pick one source")
    if output not in ("auto", "pretty", "json", "quiet"):
        raise ConfigError(f"--output {output!r} is not one of auto, pretty, json, quiet")
    from orchestrator.replay import ReplayModel, is_replay, load_model_spec

    replayed = None
    if is_replay(model):
        loaded = load_model_spec(str(model), state_dir=state_dir_of(repo, state_dir))
        replayed = loaded if isinstance(loaded, ReplayModel) else None
    effective = override(
        load_policy(policy), model=replayed.name if replayed else model, budget_usd=budget,
        agent_budget_usd=agent_budget,
        agents=agents, hours=hours, approval=False if no_approval else None,
        schedule="overnight" if overnight else None,
    )
    cli_price = parse_price(price) if price else None
    if cli_price is None and replayed is not None and replayed.recorded_price:
        cli_price = Price(*replayed.recorded_price)  # a replay costs what the recording cost
    overrides = {name: Price(p.input, p.output) for name, p in effective.prices.items()}
    model_price = resolve_price(effective.model, overrides=overrides, cli_price=cli_price)
    repo = repo.expanduser().resolve()
    specs = (tuple(TaskSpec(title=t) for t in task) if task
             else _found_tasks(repo, state_dir, effective, tasks_file, github_label))
    config = RunConfig(
        repo=repo, state_dir=state_dir_of(repo, state_dir), policy=effective,
        tasks=specs, keep_containers=keep, secrets=_secrets(),
    )
    chosen = replayed if replayed is not None else _openai_model(effective, stream)
    live = output == "auto" and not non_interactive and sys.stdout.isatty() and sys.stderr.isatty()
    _finish(launch_run(config, model_price, chosen, output=output, live=live))


def _found_tasks(repo: Path, state_dir: Optional[Path], policy: Any, tasks_file: Optional[Path],
                 github_label: Optional[str]) -> tuple[Any, ...]:
    """Tasks from a file, GitHub issues, or (neither given) discovery; the best `agents` of them."""
    from dataclasses import replace

    from orchestrator import gitops
    from orchestrator.tasks.collect import Sources, collect_tasks

    gitops.inspect_user_repo(repo)  # a clear error before any discovery runs
    discover = tasks_file is None and github_label is None
    sources = Sources(tasks_file=tasks_file, github_label=github_label, discovery=discover, coverage=discover,
                      image=policy.image, test_command=policy.test_command)
    found = collect_tasks(repo, sources, state_dir=state_dir_of(repo, state_dir), limit=policy.agents)
    if not found:
        raise ConfigError("no task given and none found",
                          hint='pass --task "what to do", a --tasks file, or see `fresh-sandbox tasks`')
    return tuple(replace(t.to_spec(), key=t.key, files=t.files) for t in found)


def _secrets() -> tuple[str, ...]:
    return tuple(os.environ[v] for v in SECRET_VARS if os.environ.get(v))


def _openai_model(policy: Any, stream: bool) -> Any:
    from orchestrator.model import OpenAIModel

    api_key = os.environ.get("OPENAI_API_KEY", "")
    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set",
                          hint="export OPENAI_API_KEY=... (any value for a local server that needs none)")
    def http_error(status: int, retry_after: str | None) -> None:
        from orchestrator import events

        events.get_logger().warning("model_http_error", status=status, retry_after=retry_after)

    return OpenAIModel(policy.model, api_key=api_key, max_output_tokens=policy.max_output_tokens, stream=stream,
                       on_http_error=http_error)


def _finish(result: Any) -> None:
    """Print the run's outcome in a few lines and exit with its code."""
    typer.echo(f"run {result.run_id}: spent ${result.spent_usd:.4f} of ${result.budget_usd:.2f}; "
               f"report {result.report_path.with_suffix('.md')}", err=True)
    for rec in result.records:
        typer.echo(f"  {rec.agent_id} {rec.state}: {rec.reason} [{rec.branch}]", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
@friendly
def recover(
    run: Optional[str] = typer.Argument(None, help="Run id (default: the latest)."),
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
    stream: bool = typer.Option(False, help="Stream model responses."),
    output: str = typer.Option("auto", "--output", help="Console events: auto, pretty, json or quiet."),
) -> None:
    """Resume a run whose supervisor died: re-attach or reap its sandboxes and carry on."""
    from orchestrator.launch import launch_run, load_interrupted_run

    run_id, config, price = load_interrupted_run(state_dir_of(repo, state_dir), run, _secrets())
    _finish(launch_run(config, price, _openai_model(config.policy, stream), output=output, resume_run=run_id))


@app.command()
@friendly
def status(
    repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt,
    run: Optional[str] = typer.Option(None, help="Run id (default: the latest)."),
    format: str = typer.Option("table", "--format", help="table, detailed or json"),
) -> None:
    """Show the agents of a run."""
    store = open_store(repo, state_dir)
    info = store.run(run)
    if info is None:
        raise PreflightError("no such run", hint="`fresh-sandbox status` without --run shows the latest")
    agents = store.agents(info["run_id"])
    if format == "json":
        info["info"] = json.loads(info["info"])
        typer.echo(json.dumps({"run": info, "agents": agents}, indent=2))
        return
    if format == "detailed":
        typer.echo(f"run {info['run_id']} ({info['status']}): ${info['spent_usd']:.4f} of ${info['budget_usd']:.2f}")
        for a in agents:
            typer.echo(f"\n{a['agent_id']}  {a['state']}  {a['task']}")
            for key in ("reason", "branch", "tip", "container_id", "steps", "prompt_tokens", "completion_tokens"):
                typer.echo(f"  {key}: {a[key]}")
            typer.echo(f"  cost: ${a['cost_usd']:.4f}  tests passed: {bool(a['tests_passed'])}  pushed: {bool(a['pushed'])}")
        return
    if format != "table":
        raise ConfigError(f"--format {format!r} is not one of table, detailed, json")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {info['run_id']} ({info['status']}) ${info['spent_usd']:.4f} of ${info['budget_usd']:.2f}")
    for col in ("agent", "state", "task", "cost", "steps", "branch"):
        table.add_column(col)
    for a in agents:
        table.add_row(a["agent_id"], a["state"], a["task"][:40], f"${a['cost_usd']:.4f}", str(a["steps"]), a["branch"])
    Console().print(table)


def _send(command: str, agent_id: Optional[str], repo: Path, state_dir: Optional[Path]) -> None:
    store = open_store(repo, state_dir)
    if agent_id is not None:
        agent = store.find_agent(agent_id)
        if agent is None:
            raise PreflightError(f"no agent {agent_id!r}", hint="`fresh-sandbox status` lists the agents")
        run_id = agent["run_id"]
    else:
        latest = store.run(None)
        if latest is None:
            raise PreflightError("no runs yet", hint="start one with `fresh-sandbox start`")
        run_id = latest["run_id"]
    store.send(run_id, command, agent_id)
    typer.echo(f"{command} sent to {agent_id or 'run ' + run_id}")


@app.command()
@friendly
def approve(agent_id: str, repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Approve an agent waiting for approval: its branch is pushed."""
    _send("approve", agent_id, repo, state_dir)


@app.command()
@friendly
def reject(agent_id: str, repo: Path = RepoOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Reject an agent waiting for approval: nothing is pushed."""
    _send("reject", agent_id, repo, state_dir)


@app.command()
@friendly
def stop(agent_id: Optional[str] = typer.Argument(None), repo: Path = RepoOpt,
         state_dir: Optional[Path] = StateOpt) -> None:
    """Stop one agent, or the whole latest run."""
    _send("stop", agent_id, repo, state_dir)


@app.command()
@friendly
def pause(agent_id: Optional[str] = typer.Argument(None), repo: Path = RepoOpt,
          state_dir: Optional[Path] = StateOpt) -> None:
    """Pause one agent (or the whole latest run) at its next step."""
    _send("pause", agent_id, repo, state_dir)


@app.command()
@friendly
def resume(agent_id: Optional[str] = typer.Argument(None), repo: Path = RepoOpt,
           state_dir: Optional[Path] = StateOpt) -> None:
    """Resume a paused agent (or the whole latest run)."""
    _send("resume", agent_id, repo, state_dir)


@app.command()
@friendly
def report(run: Optional[str] = typer.Argument(None), repo: Path = RepoOpt,
           state_dir: Optional[Path] = StateOpt,
           format: str = typer.Option("md", "--format", help="md or json")) -> None:
    """Print a run's report (the latest by default)."""
    from orchestrator.supervisor import run_dir

    store = open_store(repo, state_dir)
    info = store.run(run)
    if info is None:
        raise PreflightError(f"no run {run!r}", hint="`fresh-sandbox status` shows the latest")
    if format not in ("md", "json"):
        raise ConfigError(f"--format {format!r} is not one of md, json")
    path = run_dir(state_dir_of(repo, state_dir), info["run_id"]) / f"report.{format}"
    if not path.exists():
        raise PreflightError(f"run {info['run_id']} has no report yet", hint="it is written when the run ends")
    typer.echo(path.read_text(encoding="utf-8"), nl=False)


@app.command()
@friendly
def reap(run: Optional[str] = typer.Option(None, help="Only this run's containers.")) -> None:
    """Remove leftover sandbox containers (of one run, or all)."""
    from sandbox.docker import DockerBackend

    count = DockerBackend().reap(run)
    typer.echo(f"removed {count} container(s)")


# Commands of other areas register themselves on `app` (each module keeps heavy imports lazy).
from orchestrator import cli_demo, cli_operator, cli_tasks  # noqa: E402,F401
