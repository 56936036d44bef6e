"""`fresh-sandbox demo`: the whole product on a bundled sample, from a bundled recording."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import app, friendly


@app.command()
@friendly
def demo(
    workdir: Optional[Path] = typer.Option(None, help="Where to create the sample repository (default: a temp dir)."),
    output: str = typer.Option("auto", "--output", help="Console events: auto, pretty, json or quiet."),
) -> None:
    """Run one agent on a sample repository with a recorded model: needs Docker, no API key."""
    from orchestrator.demo import run_demo

    raise typer.Exit(run_demo(workdir, output=output))
