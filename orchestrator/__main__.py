"""`python -m orchestrator` runs the fresh-sandbox CLI."""

from orchestrator.cli import app

app()
