"""End-to-end fixtures: the CLI as a user runs it, a scripted model server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sample import SampleRepo

API_KEY = "sk-e2e-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def agent_image() -> str:
    """The agent image, built once if missing; skips when no Docker daemon answers."""
    from sandbox.base import BackendUnavailable, ImageMissing
    from sandbox.docker import DockerBackend
    from sandbox.images import AGENT_IMAGE, build_images

    try:
        DockerBackend().preflight(AGENT_IMAGE)
    except BackendUnavailable as exc:
        pytest.skip(f"no Docker daemon: {exc}")
    except ImageMissing:
        build_images(log=lambda msg: None)
    return AGENT_IMAGE


@dataclass
class CliRun:
    exit_code: int
    stdout: str
    stderr: str
    state_dir: Path

    def events(self) -> list[dict[str, Any]]:
        runs = sorted((self.state_dir / "runs").iterdir())
        return [json.loads(line) for line in (runs[-1] / "events.jsonl").read_text().splitlines()]

    def report(self) -> dict[str, Any]:
        runs = sorted((self.state_dir / "runs").iterdir())
        return json.loads((runs[-1] / "report.json").read_text())  # type: ignore[no-any-return]


def run_cli(args: list[str], *, base_url: str = "", cwd: Path | None = None, timeout: float = 240,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FRESH_"))}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url or "http://127.0.0.1:9/v1")
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def start(sample_repo: SampleRepo, agent_image: str) -> Any:
    """Run `fresh-sandbox start` on the sample repo against `base_url`; returns a CliRun."""
    def _start(base_url: str, *extra: str, task: str = "Expose low_stock on the command line",
               price: str = "1/1", budget: str = "1") -> CliRun:
        proc = run_cli(["start", "--repo", str(sample_repo.path), "--task", task, "--model", "scripted",
                        "--price", price, "--budget", budget, "--no-approval", "--output", "json", *extra],
                       base_url=base_url)
        return CliRun(proc.returncode, proc.stdout, proc.stderr, sample_repo.path / ".fresh")
    return _start


def remote_branches(remote: Path) -> list[str]:
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"], cwd=remote,
                         capture_output=True, text=True, check=True).stdout
    return out.split()
