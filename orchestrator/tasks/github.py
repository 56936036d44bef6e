"""GitHub as a task source: open issues with a label, and open pull requests to skip work already done.

The token is read on the host (GITHUB_TOKEN / GH_TOKEN) and only ever sent to the
API; owner/repo come from the `origin` remote. The API URL defaults to
api.github.com (FRESH_GITHUB_API_URL or `api_url=` for Enterprise and tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from orchestrator import forge
from orchestrator.errors import ConfigError, PreflightError
from orchestrator.tasks.model import Task

if TYPE_CHECKING:
    import httpx2

MAX_PAGES = 10  # 1,000 issues is plenty to choose from
ISSUE_SCORE = 70.0  # like a tasks-file entry of priority 3
KIND_BY_LABEL = {"documentation": "docs", "docs": "docs", "tests": "tests", "testing": "tests",
                 "enhancement": "feature", "feature": "feature"}


def repo_of(remote_url: str, api_url: str) -> tuple[str, str]:
    """(owner, repo) of a GitHub remote; ConfigError for anything else."""
    found = forge.github_repo_from_remote(remote_url, forge.github_hosts(api_url))
    if found is None:
        raise ConfigError(f"origin {remote_url!r} is not a GitHub repository",
                          hint="drop --github-label, or point origin at github.com/OWNER/REPO")
    return found


def issue_tasks(remote_url: str, label: str, *, token: str | None = None,
                api_url: str | None = None) -> list[Task]:
    """Open issues (not pull requests) carrying `label`, as tasks."""
    api = (api_url or forge.api_url_from_env()).rstrip("/")
    owner, repo = repo_of(remote_url, api)
    params = {"labels": label, "state": "open", "per_page": "100"}
    tasks = []
    for item in _pages(api, token, f"/repos/{owner}/{repo}/issues", params):
        if "pull_request" in item or not isinstance(item.get("number"), int):
            continue
        labels = [str(lab.get("name", "")) for lab in item.get("labels", []) if isinstance(lab, dict)]
        kind = next((KIND_BY_LABEL[n.lower()] for n in labels if n.lower() in KIND_BY_LABEL), "task")
        tasks.append(Task(
            key=f"github:{owner}/{repo}#{item['number']}", title=str(item.get("title") or "")[:200],
            description=str(item.get("body") or "")[:4000].strip(), kind=kind, score=ISSUE_SCORE,
            source="github",
            evidence=(f"issue #{item['number']} {item.get('html_url', '')}".strip(),
                      "labels: " + ", ".join(labels)),
        ))
    return tasks


def open_pull_requests(remote_url: str, *, token: str | None = None,
                       api_url: str | None = None) -> list[tuple[str, str]]:
    """(head branch, title) of every open pull request of the origin repository."""
    api = (api_url or forge.api_url_from_env()).rstrip("/")
    owner, repo = repo_of(remote_url, api)
    return [(str(item.get("head", {}).get("ref", "")), str(item.get("title", "")))
            for item in _pages(api, token, f"/repos/{owner}/{repo}/pulls", {"state": "open", "per_page": "100"})]


def _pages(api: str, token: str | None, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    import httpx2

    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "User-Agent": "fresh-sandbox"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url: str | None = f"{api}{path}"
    with httpx2.Client(headers=headers, timeout=30.0, transport=httpx2.HTTPTransport(retries=2)) as client:
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = _get(client, url, params)
            params = {}  # the next link carries them
            data = response.json()
            if not isinstance(data, list):
                raise PreflightError(f"GitHub answered {path} with something that is not a list",
                                     hint="check FRESH_GITHUB_API_URL")
            yield from (item for item in data if isinstance(item, dict))
            url = response.links.get("next", {}).get("url")


def _get(client: httpx2.Client, url: str, params: dict[str, str]) -> httpx2.Response:
    import httpx2

    try:
        response = client.get(url, params=params or None)
    except httpx2.HTTPError as exc:
        raise PreflightError(f"GitHub API unreachable: {type(exc).__name__}",
                             hint="check the network, or FRESH_GITHUB_API_URL") from exc
    if response.status_code in (401, 403):
        raise PreflightError(f"GitHub refused the request (HTTP {response.status_code})",
                             hint="set GITHUB_TOKEN to a token that can read the repository's issues")
    if response.status_code != 200:
        raise PreflightError(f"GitHub answered HTTP {response.status_code} for {url}",
                             hint="check the origin remote and that the token can see the repository")
    return response
