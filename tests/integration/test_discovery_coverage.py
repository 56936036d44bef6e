"""The untested-code source against the real Docker daemon: tests run traced in a sandbox, never on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tasks.codebase import Codebase
from orchestrator.tasks.collect import Sources, collect_tasks
from orchestrator.tasks.sample import make_shop_repo
from orchestrator.tasks.untested import run_traced_tests, untested_tasks
from sandbox.docker import DockerBackend

pytestmark = pytest.mark.docker


def _discovery_containers(backend: DockerBackend) -> list[str]:
    return [c.id for c in backend.client.containers.list(all=True, filters={"label": "fresh-sandbox.role=discovery"})]


@pytest.fixture
def clean_backend(backend: DockerBackend) -> object:
    """The session backend; any discovery sandbox left behind fails the test and is removed."""
    before = set(_discovery_containers(backend))
    yield backend
    left = [cid for cid in _discovery_containers(backend) if cid not in before]
    for cid in left:
        backend.client.containers.get(cid).remove(force=True)
    assert not left, "a discovery sandbox was left behind"


def test_traced_tests_find_the_untested_module_only(tmp_path: Path, clean_backend: DockerBackend,
                                                    agent_image: str) -> None:
    repo = make_shop_repo(tmp_path)
    run = run_traced_tests(repo, clean_backend, agent_image)
    assert run.exit_code == 0, run.output_tail
    assert "shop/inventory.py" in run.executed and "shop/pricing.py" in run.executed  # imported, not run
    tasks = untested_tasks(Codebase(repo), run)
    assert [t.key for t in tasks] == ["untested:shop/pricing.py"]


def test_collect_tasks_with_every_discovery_source(tmp_path: Path, clean_backend: DockerBackend,
                                                   agent_image: str) -> None:
    repo = make_shop_repo(tmp_path)
    tasks = collect_tasks(repo, Sources(image=agent_image), backend=clean_backend)
    assert sorted(t.key for t in tasks) == [
        "drift:options:add", "drift:stale-command:remove", "drift:undocumented:report",
        "unhooked:shop.inventory.export_csv", "untested:shop/pricing.py"]
