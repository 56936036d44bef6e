"""A pushed branch becomes a labelled pull request on a GitHub-REST endpoint served on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.fake_github import FakeGitHub
from orchestrator.sample import SampleRepo
from orchestrator.testing import ScriptedModelServer
from tests.e2e.conftest import API_KEY, remote_branches
from tests.e2e.test_start import ADD_FEATURE

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

GITHUB_URL = "https://github.com/acme/inventory.git"


def github_origin(sample_repo: SampleRepo, home: Path) -> dict[str, str]:
    """Point origin at a GitHub URL that git rewrites to the local bare remote (no network)."""
    subprocess.run(["git", "remote", "set-url", "origin", GITHUB_URL], cwd=sample_repo.path, check=True)
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "{sample_repo.remote}"]\n\tinsteadOf = {GITHUB_URL}\n')
    return {"HOME": str(home)}


def run_start(sample_repo: SampleRepo, base_url: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GITHUB_", "GH_", "FRESH_"))}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url, **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "start", "--repo", str(sample_repo.path), "--task",
         "Expose low_stock on the command line", "--model", "scripted", "--price", "1/1", "--no-approval",
         "--output", "json"], env=env, capture_output=True, text=True, timeout=300, check=False)


def report(sample_repo: SampleRepo) -> dict[str, Any]:
    runs = sorted((sample_repo.path / ".fresh" / "runs").iterdir())
    return json.loads((runs[-1] / "report.json").read_text())  # type: ignore[no-any-return]


def test_pushed_branch_becomes_a_labelled_pull_request(sample_repo: SampleRepo, agent_image: str,
                                                        tmp_path: Path) -> None:
    env = github_origin(sample_repo, tmp_path / "home")
    with FakeGitHub("gh-token-abcdef123456") as github, ScriptedModelServer(ADD_FEATURE) as server:
        env.update(GITHUB_TOKEN="gh-token-abcdef123456", FRESH_GITHUB_API_URL=github.api_url)
        proc = run_start(sample_repo, server.base_url, env)
        pulls = [r for r in github.requests if r.method == "POST" and r.path.endswith("/pulls")]
        seen_by_model = json.dumps(server.requests)
    assert proc.returncode == 0, proc.stderr
    agent = report(sample_repo)["agents"][0]
    assert agent["pushed"] and agent["pr_url"]
    assert agent["branch"] in remote_branches(sample_repo.remote)
    body = pulls[0].body
    assert body["head"] == agent["branch"] and body["base"] == "main"
    assert "Expose low_stock" in body["body"] and "4 tests" in body["body"]
    assert "gh-token-abcdef123456" not in seen_by_model
    assert "gh-token-abcdef123456" not in proc.stdout + proc.stderr


def test_missing_token_is_a_warning_and_the_branch_stays_pushed(sample_repo: SampleRepo, agent_image: str,
                                                                 tmp_path: Path) -> None:
    env = github_origin(sample_repo, tmp_path / "home")
    with FakeGitHub("gh-token-abcdef123456") as github, ScriptedModelServer(ADD_FEATURE) as server:
        env.update(FRESH_GITHUB_API_URL=github.api_url)
        proc = run_start(sample_repo, server.base_url, env)
    assert proc.returncode == 0, proc.stderr
    agent = report(sample_repo)["agents"][0]
    assert agent["pushed"] and agent["pr_url"] is None
    assert agent["branch"] in remote_branches(sample_repo.remote)
    assert "pull_request_failed" in proc.stdout and "GITHUB_TOKEN" in proc.stdout
