"""Fixtures for the sandbox integration tests: real Docker, real git.

Every container a test makes carries a per-session run label and is removed
when its fixture ends, and the whole session's run is reaped at the end.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from sandbox.base import BackendUnavailable, SandboxSpec
from sandbox.docker import DockerBackend, DockerSandbox

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def backend() -> Iterator[DockerBackend]:
    """A Docker backend whose daemon answers; the tests skip with the reason otherwise."""
    b = DockerBackend()
    try:
        b.client
    except BackendUnavailable as exc:
        pytest.skip(f"no Docker daemon answers: {exc}")
    yield b


@pytest.fixture(scope="session")
def agent_image(backend: DockerBackend) -> str:
    """The agent image, built (offline path) when it is missing."""
    from sandbox.images import AGENT_IMAGE, build_images

    try:
        backend.preflight(AGENT_IMAGE)
    except Exception:
        build_images(log=lambda line: None)
    return AGENT_IMAGE


@pytest.fixture(scope="session")
def run_id(backend: DockerBackend) -> Iterator[str]:
    """One run label for the session; everything under it is reaped at the end."""
    rid = f"test-{uuid.uuid4().hex[:8]}"
    yield rid
    backend.reap(rid)


def git(cwd: Path, *args: str) -> str:
    """Run host git with a fixed identity and no user config."""
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(cwd),
           "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


class Origin:
    """A host-owned bare repository with three commits on main."""

    def __init__(self, root: Path) -> None:
        work = root / "work"
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        self.commits: list[str] = []
        for i in range(3):
            (work / "file.txt").write_text(f"version {i}\n")
            git(work, "add", "file.txt")
            git(work, "commit", "-q", "-m", f"commit {i}")
            self.commits.append(git(work, "rev-parse", "HEAD"))
        self.path = root / "origin.git"
        git(root, "clone", "-q", "--bare", str(work), str(self.path))


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path)


@pytest.fixture
def make_spec(agent_image: str, run_id: str, origin: Origin) -> Callable[..., SandboxSpec]:
    """Build a spec for the session's run; keyword arguments override fields."""

    def make(**overrides: object) -> SandboxSpec:
        fields: dict[str, object] = dict(
            image=agent_image, run_id=run_id, agent_id=f"a-{uuid.uuid4().hex[:6]}",
            origin=str(origin.path), branch="agent/work", base_commit=origin.commits[1])
        fields.update(overrides)
        return SandboxSpec(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
def sandbox(backend: DockerBackend, make_spec: Callable[..., SandboxSpec]) -> Iterator[DockerSandbox]:
    """A running sandbox with the default spec, always removed."""
    with backend.create(make_spec()) as sb:
        yield sb
