"""Every task source in one call: what `fresh-sandbox tasks` lists and `start` takes without --task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import DEFAULT_TEST_COMMAND
from orchestrator.tasks.model import Task
from sandbox.base import Backend


@dataclass(frozen=True)
class Sources:
    """Which sources to consult; the defaults are what `start` uses."""

    tasks_file: Path | None = None
    github_label: str | None = None
    discovery: bool = True  # unhooked features and docs drift (static, on the host)
    coverage: bool = True  # untested code (runs the tests in a sandbox)
    image: str = "fresh-sandbox/agent:latest"
    test_command: str = DEFAULT_TEST_COMMAND
    github_token: str | None = field(default=None, repr=False)  # default: GITHUB_TOKEN / GH_TOKEN
    github_api_url: str | None = None  # default: FRESH_GITHUB_API_URL or api.github.com


def collect_tasks(repo: Path, sources: Sources = Sources(), *, state_dir: Path | None = None,
                  backend: Backend | None = None, limit: int | None = None,
                  skip_taken: bool = True) -> list[Task]:
    """Ranked candidate tasks for `repo`, minus those claimed or already on a branch or open PR.

    Nothing of the target runs on the host; the coverage source needs `backend`
    (default: Docker) and the image.
    """
    from orchestrator import forge
    from orchestrator.gitops import git
    from orchestrator.tasks.rank import rank

    root = Path(git("rev-parse", "--show-toplevel", cwd=repo.expanduser().resolve(), isolated=False))
    remote = git("remote", "get-url", "origin", cwd=root, isolated=False, check=False)
    token = sources.github_token or forge.token_from_env()
    tasks = _gather(root, sources, remote, token, backend)
    if skip_taken:
        tasks = _drop_taken(tasks, root, remote, token, sources, (state_dir or root / ".fresh") / "state.db")
    return rank(tasks, limit)


def _gather(root: Path, sources: Sources, remote: str, token: str | None, backend: Backend | None) -> list[Task]:
    tasks: list[Task] = []
    if sources.tasks_file is not None:
        from orchestrator.tasks.tasksfile import load_tasks_file

        tasks += load_tasks_file(sources.tasks_file)
    if sources.github_label:
        from orchestrator.errors import ConfigError
        from orchestrator.tasks.github import issue_tasks

        if not remote:
            raise ConfigError(f"{root} has no origin remote to read issues from",
                              hint="add one, or drop --github-label")
        tasks += issue_tasks(remote, sources.github_label, token=token, api_url=sources.github_api_url)
    if sources.discovery or sources.coverage:
        tasks += discover(root, sources, backend)
    return tasks


def discover(root: Path, sources: Sources, backend: Backend | None = None) -> list[Task]:
    """Unhooked features and docs drift (static), plus untested code when `sources.coverage`."""
    from orchestrator.tasks.codebase import Codebase

    code = Codebase(root)
    tasks: list[Task] = []
    if sources.discovery:
        from orchestrator.tasks.cli_surface import read_cli
        from orchestrator.tasks.drift import find_drift, read_docs
        from orchestrator.tasks.unhooked import find_entry_points, find_unhooked, read_scripts

        scripts = read_scripts(root)
        tasks += find_unhooked(code, find_entry_points(code, scripts))
        tasks += find_drift(read_cli(code), read_docs(root), list(scripts))
    if sources.coverage:
        from orchestrator.tasks.untested import run_traced_tests, untested_tasks

        if backend is None:
            from sandbox.docker import DockerBackend

            backend = DockerBackend()
        tasks += untested_tasks(code, run_traced_tests(root, backend, sources.image,
                                                       test_command=sources.test_command))
    return tasks


def _drop_taken(tasks: list[Task], root: Path, remote: str, token: str | None, sources: Sources,
                store_path: Path) -> list[Task]:
    from orchestrator import forge
    from orchestrator.gitops import git
    from orchestrator.tasks.claims import not_covered, unclaimed

    tasks = unclaimed(tasks, store_path)
    if not remote:
        return tasks
    heads = git("ls-remote", "--heads", "origin", "refs/heads/fresh/*", cwd=root, isolated=False, check=False)
    branches = [line.split("\t", 1)[1] for line in heads.splitlines() if "\t" in line]
    titles: list[str] = []
    api = sources.github_api_url or forge.api_url_from_env()
    if token and forge.github_repo_from_remote(remote, forge.github_hosts(api)):
        from orchestrator.tasks.github import open_pull_requests

        pulls = open_pull_requests(remote, token=token, api_url=api)
        branches += [head for head, _ in pulls]
        titles += [title for _, title in pulls]
    return not_covered(tasks, branches, titles)
