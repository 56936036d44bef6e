"""Task commands (`tasks`) registered on the main app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import RepoOpt, StateOpt, state_dir_of, app, friendly


@app.command("tasks")
@friendly
def tasks(
    repo: Path = RepoOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the candidates as JSON."),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks-file", help="A TOML (or YAML) file of [[task]] entries."),
    github_label: Optional[str] = typer.Option(None, "--github-label", help="Also take open GitHub issues with this label (token: GITHUB_TOKEN)."),
    no_coverage: bool = typer.Option(False, "--no-coverage", help="Skip running the tests in a sandbox to find untested code."),
    no_discovery: bool = typer.Option(False, "--no-discovery", help="Only the tasks file and GitHub issues: no static discovery."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show at most N candidates."),
    policy: Optional[str] = typer.Option(None, help="Policy whose image and test command the coverage run uses."),
    state_dir: Optional[Path] = StateOpt,
) -> None:
    """List candidate tasks (kind, score, evidence) without starting anything."""
    from orchestrator.config import load_policy
    from orchestrator.tasks.collect import Sources, collect_tasks

    effective = load_policy(policy)
    sources = Sources(tasks_file=tasks_file, github_label=github_label, discovery=not no_discovery,
                      coverage=not no_coverage, image=effective.image, test_command=effective.test_command)
    found = collect_tasks(repo, sources, state_dir=state_dir_of(repo, state_dir), limit=limit)
    if as_json:
        typer.echo(json.dumps([t.as_json() for t in found], indent=2))
        return
    if not found:
        typer.echo("no candidate tasks found")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(found)} candidate task(s)", show_lines=True)
    for col in ("score", "kind", "task", "evidence"):
        table.add_column(col)
    for t in found:
        table.add_row(f"{t.score:.0f}", t.kind, t.title, "\n".join(t.evidence[:3]))
    Console().print(table)
