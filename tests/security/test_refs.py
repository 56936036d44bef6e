"""Item 3: only the agent's branch leaves, based on the run's base commit."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from tests.security.conftest import remote_branches

pytestmark = [pytest.mark.docker]


def remote_refs(remote: Any) -> list[str]:
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=remote,
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_rewritten_main_tags_and_other_branches_never_leave(start: Any, sample_repo: SampleRepo) -> None:
    before = remote_refs(sample_repo.remote)
    hostile = (
        "b=$(git branch --show-current) && git checkout -q main 2>/dev/null || git checkout -q -b main origin/main; "
        "echo evil > evil.txt && git add evil.txt && git commit -qm 'evil on main' && git tag -a v9 -m v9 && "
        "git checkout -q -b side && echo side > side.txt && git add side.txt && git commit -qm side && "
        "git checkout -q $b && echo 'X = 1' > inventory/extra.py"  # left uncommitted: committed for it
    )
    with ScriptedModelServer([Bash(hostile), Submit("Added a constant.")]) as server:
        run = start(server.base_url)
    agent = run.report()["agents"][0]
    assert agent["status"] == "pushed", agent
    after = remote_refs(sample_repo.remote)
    assert [r for r in after if not r.startswith(f"refs/heads/{agent['branch']} ")] == before  # main untouched, no tag
    assert remote_branches(sample_repo.remote) == sorted(["main", agent["branch"]])
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", agent["branch"]], cwd=sample_repo.remote,
                           capture_output=True, text=True, check=True).stdout.split()
    assert "inventory/extra.py" in files and "evil.txt" not in files and "side.txt" not in files
    message = subprocess.run(["git", "log", "-1", "--format=%B", agent["branch"]], cwd=sample_repo.remote,
                             capture_output=True, text=True, check=True).stdout
    assert message.strip() == "Added a constant."  # leftovers committed with the summary


def test_a_branch_not_based_on_the_base_commit_is_not_imported(start: Any, sample_repo: SampleRepo) -> None:
    script = [Bash("b=$(git branch --show-current); git checkout -q --orphan tmp && git rm -rfq . && "
                   "echo new > new.txt && git add new.txt && git commit -qm fresh && git branch -M tmp \"$b\" && "
                   "git log --oneline | wc -l"), Submit("Started over.")]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url)
    agent = run.report()["agents"][0]
    assert agent["status"] == "failed" and "does not start from the run's base commit" in agent["reason"], agent
    assert remote_branches(sample_repo.remote) == ["main"]
