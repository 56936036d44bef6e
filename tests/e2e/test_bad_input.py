"""Bad input: one clear line, a hint, a non-zero exit, and nothing half-created."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import ScriptedModelServer
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

BASE = ["start", "--task", "do it", "--model", "scripted", "--price", "1/1", "--no-approval"]


def assert_clean_failure(proc: subprocess.CompletedProcess[str], needle: str, repo: Path | None = None) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr, proc.stderr
    if repo is not None:
        assert not (repo / ".fresh" / "runs").exists() or not any((repo / ".fresh" / "runs").iterdir())


def test_not_a_repository(tmp_path: Path) -> None:
    assert_clean_failure(run_cli([*BASE, "--repo", str(tmp_path)]), "is not a git repository")


def test_dirty_repository(sample_repo: SampleRepo) -> None:
    (sample_repo.path / "inventory" / "stock.py").write_text("broken")
    assert_clean_failure(run_cli([*BASE, "--repo", str(sample_repo.path)]), "uncommitted changes", sample_repo.path)


def test_no_remote(sample_repo: SampleRepo) -> None:
    subprocess.run(["git", "remote", "remove", "origin"], cwd=sample_repo.path, check=True)
    assert_clean_failure(run_cli([*BASE, "--repo", str(sample_repo.path)]), "no 'origin' remote", sample_repo.path)


def test_unknown_model_price(sample_repo: SampleRepo) -> None:
    proc = run_cli(["start", "--task", "x", "--model", "my-local-llm", "--repo", str(sample_repo.path)])
    assert_clean_failure(proc, "no price known for model my-local-llm", sample_repo.path)
    assert "--price" in proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--budget", "abc"], "Invalid value"),
    (["--budget", "-1"], "budget_usd"),
    (["--price", "cheap"], "price"),
    (["--policy", "nonexistent"], "policy 'nonexistent' not found"),
    (["--output", "xml"], "--output"),
])
def test_bad_flags(sample_repo: SampleRepo, args: list[str], needle: str) -> None:
    assert_clean_failure(run_cli([*BASE, "--repo", str(sample_repo.path), *args]), needle, sample_repo.path)


def test_bad_policy_file(sample_repo: SampleRepo, tmp_path: Path) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text("budget_usd = 1\nagentz = 3\n")
    proc = run_cli([*BASE, "--repo", str(sample_repo.path), "--policy", str(policy)])
    assert_clean_failure(proc, "agentz", sample_repo.path)


def test_missing_api_key(sample_repo: SampleRepo) -> None:
    proc = run_cli([*BASE, "--repo", str(sample_repo.path)], extra_env={"OPENAI_API_KEY": ""})
    assert_clean_failure(proc, "OPENAI_API_KEY is not set", sample_repo.path)


def test_unreachable_endpoint(sample_repo: SampleRepo) -> None:
    proc = run_cli([*BASE, "--repo", str(sample_repo.path)], base_url="http://127.0.0.1:9/v1")
    assert_clean_failure(proc, "127.0.0.1:9", sample_repo.path)
    assert "OPENAI_BASE_URL" in proc.stderr


def test_refused_key(sample_repo: SampleRepo) -> None:
    with ScriptedModelServer([], expected_key="the-right-key") as server:
        proc = run_cli([*BASE, "--repo", str(sample_repo.path)], base_url=server.base_url)
    assert_clean_failure(proc, "OPENAI_API_KEY", sample_repo.path)


@pytest.mark.docker
def test_missing_image(sample_repo: SampleRepo, tmp_path: Path, agent_image: str) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('image = "fresh-sandbox/absent:latest"\n')
    with ScriptedModelServer([]) as server:
        proc = run_cli([*BASE, "--repo", str(sample_repo.path), "--policy", str(policy)], base_url=server.base_url)
    assert_clean_failure(proc, "fresh-sandbox/absent:latest", None)
    assert "images build" in proc.stderr


def test_no_daemon(sample_repo: SampleRepo) -> None:
    with ScriptedModelServer([]) as server:
        proc = run_cli([*BASE, "--repo", str(sample_repo.path)], base_url=server.base_url,
                       extra_env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_clean_failure(proc, "Docker", None)


def test_no_task(sample_repo: SampleRepo) -> None:
    assert_clean_failure(run_cli(["start", "--repo", str(sample_repo.path), "--tasks", "/nonexistent.toml"]), "nonexistent.toml")


def test_control_commands_without_runs(tmp_path: Path) -> None:
    for cmd in (["status"], ["approve", "a1"], ["report"]):
        assert_clean_failure(run_cli([*cmd, "--repo", str(tmp_path)]), "no runs found")


