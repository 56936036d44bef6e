"""Item 3: commits that may not leave are refused, the container is held, nothing is pushed."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from tests.security.conftest import event, remote_branches, run_containers

pytestmark = [pytest.mark.docker]

HOSTILE = (
    "ln -s /etc/passwd inventory/passwd && ln -s ../../../.. inventory/up && "
    "git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),vendor/lib && git commit -qm lib && "
    "printf '[submodule \"lib\"]\\n\\tpath = vendor/lib\\n\\turl = https://example.invalid/x\\n' > .gitmodules && "
    "head -c 6000000 /dev/urandom > data.bin && git add -A && git commit -qm 'add data'"
)


def test_symlink_out_gitlink_gitmodules_and_huge_file_are_refused(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer([Bash(HOSTILE), Submit("Added data.")]) as server:
        run = start(server.base_url)
    agent = run.report()["agents"][0]
    held = event(run, "work_refused")["container_id"]
    try:
        _assert_refused(run, agent, held, sample_repo)
    finally:
        subprocess.run(["docker", "rm", "-f", held], capture_output=True, check=False)


def _assert_refused(run: Any, agent: dict[str, Any], held: str, sample_repo: SampleRepo) -> None:
    assert agent["status"] == "refused" and not agent["pushed"], agent
    for needle in ("inventory/passwd", "inventory/up", "vendor/lib: gitlink", ".gitmodules",
                   "data.bin: 6000000 bytes"):
        assert needle in agent["reason"], agent["reason"]
    assert remote_branches(sample_repo.remote) == ["main"]
    assert agent["tests"] is None  # the gate never ran on refused work
    assert run_containers(run) == [held[:12]]  # the only container left is the held one
    name = subprocess.run(["docker", "inspect", "-f", "{{.Name}}", held], capture_output=True,
                          text=True, check=True).stdout
    assert "fresh-held-" in name
