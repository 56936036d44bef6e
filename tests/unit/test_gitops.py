"""Host-side git with real git: preflight of the user's repo and the verified bundle import."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orchestrator import gitops
from orchestrator.errors import PreflightError, PushError
from orchestrator.sample import SampleRepo


def sh(cmd: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_inspect_reads_head_branch_and_remote(sample_repo: SampleRepo) -> None:
    user = gitops.inspect_user_repo(sample_repo.path)
    assert user.branch == "main"
    assert user.remote_url == str(sample_repo.remote)
    assert len(user.head) == 40


@pytest.mark.parametrize("setup,needle", [
    ("echo x >> README.md", "uncommitted changes"),
    ("git remote remove origin", "no 'origin' remote"),
])
def test_inspect_refuses_dirty_or_remoteless(sample_repo: SampleRepo, setup: str, needle: str) -> None:
    sh(setup, sample_repo.path)
    with pytest.raises(PreflightError, match=needle) as info:
        gitops.inspect_user_repo(sample_repo.path)
    assert info.value.hint


def test_inspect_ignores_its_own_state_dir(sample_repo: SampleRepo) -> None:
    (sample_repo.path / ".fresh").mkdir()
    (sample_repo.path / ".fresh" / "state.db").write_text("x")
    gitops.inspect_user_repo(sample_repo.path)


def test_inspect_refuses_non_repo(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="not a git repository"):
        gitops.inspect_user_repo(tmp_path)


def _agent_clone(run_repo: Path, tmp_path: Path, base: str) -> Path:
    """What the sandbox does: a standalone clone on the agent branch."""
    clone = tmp_path / "agent-clone"
    sh(f"git clone -q {run_repo} {clone} && git -C {clone} checkout -q -B fresh/r/a1 {base}", tmp_path)
    return clone


def test_import_bundle_takes_only_the_branch_and_runs_no_hook(sample_repo: SampleRepo, tmp_path: Path) -> None:
    user = gitops.inspect_user_repo(sample_repo.path)
    run_repo = gitops.create_run_repo(user, tmp_path / "run" / "origin.git")
    clone = _agent_clone(run_repo, tmp_path, user.head)
    sh("echo 'def f(): return 1' > inventory/new.py && git add -A && git commit -qm work", clone)
    sh("git tag evil && git checkout -q -b other && git commit -q --allow-empty -m other", clone)
    sh(f"git bundle create -q {tmp_path}/w.bundle refs/heads/fresh/r/a1 ^{user.head}", clone)
    marker = tmp_path / "hook-ran"
    # Hostile content: hooks and config that would run code if git on the host read them.
    hooks = clone / ".git" / "hooks"
    for hook in ("post-checkout", "reference-transaction", "post-merge"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / hook).chmod(0o755)
    sh(f"git config core.fsmonitor 'touch {marker}'", clone)
    tip = gitops.import_bundle(run_repo, (tmp_path / "w.bundle").read_bytes(), "fresh/r/a1", user.head)
    assert tip == sh("git rev-parse fresh/r/a1", clone).strip()
    refs = sh("git for-each-ref --format='%(refname)'", run_repo).split()
    assert "refs/heads/fresh/r/a1" in refs and "refs/tags/evil" not in refs and "refs/heads/other" not in refs
    assert not marker.exists()
    assert gitops.changed_files(run_repo, user.head, tip) == [("A", "inventory/new.py")]


def test_import_refuses_history_not_based_on_the_run(sample_repo: SampleRepo, tmp_path: Path) -> None:
    user = gitops.inspect_user_repo(sample_repo.path)
    run_repo = gitops.create_run_repo(user, tmp_path / "run" / "origin.git")
    clone = _agent_clone(run_repo, tmp_path, user.head)
    sh("git checkout -q --orphan tmp && git commit -q -m rewritten && git branch -D fresh/r/a1 && git branch -m fresh/r/a1", clone)
    sh(f"git bundle create -q {tmp_path}/w.bundle refs/heads/fresh/r/a1", clone)
    with pytest.raises(PushError, match="does not start from"):
        gitops.import_bundle(run_repo, (tmp_path / "w.bundle").read_bytes(), "fresh/r/a1", user.head)
    assert "fresh/r/a1" not in sh("git branch", run_repo)


def test_import_refuses_garbage(sample_repo: SampleRepo, tmp_path: Path) -> None:
    user = gitops.inspect_user_repo(sample_repo.path)
    run_repo = gitops.create_run_repo(user, tmp_path / "run" / "origin.git")
    with pytest.raises(PushError):
        gitops.import_bundle(run_repo, b"not a bundle", "fresh/r/a1", user.head)


def test_push_is_idempotent(sample_repo: SampleRepo, tmp_path: Path) -> None:
    user = gitops.inspect_user_repo(sample_repo.path)
    run_repo = gitops.create_run_repo(user, tmp_path / "run" / "origin.git")
    sh(f"git branch fresh/r/a1 {user.head}", run_repo)
    assert not gitops.remote_has_branch(user.remote_url, "fresh/r/a1")
    gitops.push_branch(run_repo, user.remote_url, "fresh/r/a1")
    gitops.push_branch(run_repo, user.remote_url, "fresh/r/a1")
    assert gitops.remote_has_branch(user.remote_url, "fresh/r/a1")


def _agent_commit(sample_repo: SampleRepo, script: str) -> tuple[Path, str, str]:
    """Run `script` in a clone, commit, and return (bare run repo holding it, base, tip)."""
    repo = sample_repo.path
    base = sh("git rev-parse HEAD", repo).strip()
    sh(script + " && git add -A && git commit -qm work", repo)
    return repo / ".git", base, sh("git rev-parse HEAD", repo).strip()


@pytest.mark.parametrize("script,needle", [
    ("ln -s /etc/passwd inventory/pw", "points outside the repository"),
    ("ln -s ../../.. up", "points outside the repository"),
    ("ln -s ../.git/config inventory/cfg", "points outside the repository"),
    ("git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),vendor/lib && git commit -qm sub"
     " && echo x > y.txt", "gitlink"),
    ("printf '[submodule \"x\"]\\n\\tpath = x\\n\\turl = ../x\\n' > .gitmodules", ".gitmodules"),
    ("head -c 2000 /dev/zero > big.bin", "over the limit of 1000"),
    ("head -c 2000 /dev/zero > big.bin && git add big.bin && git commit -qm big && git rm -q big.bin",
     "over the limit of 1000"),  # added then deleted: still in the history that would be pushed
])
def test_refusals(sample_repo: SampleRepo, script: str, needle: str) -> None:
    run_repo, base, tip = _agent_commit(sample_repo, script)
    reasons = gitops.find_refusals(run_repo, base, tip, max_file_bytes=1000)
    assert any(needle in r for r in reasons), reasons


def test_inside_symlinks_and_small_files_are_accepted(sample_repo: SampleRepo) -> None:
    run_repo, base, tip = _agent_commit(
        sample_repo, "ln -s stock.py inventory/alias.py && ln -s ../README.md inventory/readme && echo x > s.txt")
    assert gitops.find_refusals(run_repo, base, tip, max_file_bytes=1000) == []


def test_many_imports_never_repack_the_run_repository(sample_repo: SampleRepo, tmp_path: Path) -> None:
    """Sandboxes copy the run repository's packs while others are imported: no auto-gc may delete them."""
    user = gitops.inspect_user_repo(sample_repo.path)
    run_repo = gitops.create_run_repo(user, tmp_path / "run" / "origin.git")
    clone = _agent_clone(run_repo, tmp_path, user.head)
    packs_before: set[str] = set()
    for i in range(55):
        branch = f"fresh/r/a{i}"
        sh(f"git checkout -q -B {branch} {user.head} && echo {i} > f.txt && git add f.txt && git commit -qm {i}", clone)
        sh(f"git bundle create -q {tmp_path}/b.bundle refs/heads/{branch} ^{user.head}", clone)
        gitops.import_bundle(run_repo, (tmp_path / "b.bundle").read_bytes(), branch, user.head)
        if i == 0:
            packs_before = {p.name for p in (run_repo / "objects" / "pack").glob("*.pack")}
    packs_after = {p.name for p in (run_repo / "objects" / "pack").glob("*.pack")}
    assert packs_before <= packs_after  # nothing was repacked away
