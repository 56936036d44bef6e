"""Adversarial suite: a hostile scripted agent against the real Docker daemon.

Reuses the end-to-end fixtures (the CLI as a user runs it, a scripted model
server on loopback). Each test asserts outcomes: what reached the remote, the
host, the logs and the model.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from orchestrator.testing import ScriptedModelServer
from tests.e2e.conftest import API_KEY, CliRun, agent_image, remote_branches, run_cli, start  # noqa: F401


def seen_by_model(server: ScriptedModelServer) -> str:
    """Everything the model was sent, as one string."""
    return json.dumps(server.requests)


def events_text(run: CliRun) -> str:
    runs = sorted((run.state_dir / "runs").iterdir())
    return (runs[-1] / "events.jsonl").read_text()


def event(run: CliRun, name: str) -> dict[str, Any]:
    for e in run.events():
        if e["event"] == name:
            return e
    raise AssertionError(f"no {name} event")


def run_containers(run: CliRun) -> list[str]:
    """Every container (running or not) labelled with the run's id."""
    run_id = run.report()["run_id"]
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fresh-sandbox.run={run_id}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def tool_outputs(server: ScriptedModelServer) -> list[str]:
    """What each bash call returned to the model, in order (from the last request it received)."""
    messages = server.requests[-1]["messages"]
    return [str(m["content"]) for m in messages if m.get("role") == "tool"]
