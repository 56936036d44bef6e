"""GitHub REST: turn a pushed branch into a labelled pull request.

The token belongs to the supervisor only (GITHUB_TOKEN or GH_TOKEN); it is never given to
a sandbox. Every failure happens after the push, so each error says the branch stays pushed.

PushError
 └── ForgeError            the pull request could not be opened; the branch stays pushed
      ├── NotOnGitHub      the remote is not a GitHub repository
      ├── TokenMissing     no GITHUB_TOKEN / GH_TOKEN in the supervisor's environment
      ├── TokenRejected    HTTP 401/403: bad, expired or under-scoped token
      ├── ForgeRejected    any other refusal (404 no access, 422 no commits, 5xx)
      └── ForgeUnreachable connection failed or timed out

The client is httpx2 (already installed as the openai SDK's transport). githubkit was tried
first: 0.16.1 fails to import against the hishel 2.x it installs, and three endpoints do not
need a generated SDK of thousands of models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from orchestrator.errors import PushError

if TYPE_CHECKING:
    import httpx2

DEFAULT_API_URL = "https://api.github.com"
API_URL_VAR = "FRESH_GITHUB_API_URL"
TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
DEFAULT_LABELS = ("autonomous",)
MAX_BODY_CHARS = 60_000  # GitHub refuses bodies over 65,536 characters
_STAYS = "the branch stays pushed"


class ForgeError(PushError):
    """The pull request could not be opened; the pushed branch is not affected."""


class NotOnGitHub(ForgeError):
    """The remote is not a GitHub repository."""


class TokenMissing(ForgeError):
    """No token is available to the supervisor."""


class TokenRejected(ForgeError):
    """GitHub refused the token (401/403)."""


class ForgeRejected(ForgeError):
    """GitHub refused the request for another reason."""


class ForgeUnreachable(ForgeError):
    """The GitHub API could not be reached."""


@dataclass(frozen=True)
class PullRequest:
    """An open pull request; `labelled` is False when the labels could not be applied."""

    number: int
    url: str
    labelled: bool = True


# -- where, and with what ---------------------------------------------------------------------

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")  # git@github.com:o/r.git


def github_repo_from_remote(url: str, hosts: Sequence[str] = ("github.com",)) -> tuple[str, str] | None:
    """(owner, repo) when `url` is a GitHub remote (https, ssh or scp-like), else None."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host, path = (parts.hostname or "").lower(), parts.path
    else:
        match = _SCP_LIKE.match(url)
        if match is None:
            return None
        host, path = match["host"].lower(), match["path"]
    wanted = {h.lower() for h in hosts} | {"www." + h.lower() for h in hosts}
    if host not in wanted:
        return None
    pieces = [p for p in path.strip("/").split("/") if p]
    if len(pieces) != 2:
        return None
    owner, repo = pieces[0], pieces[1].removesuffix(".git")
    return (owner, repo) if owner and repo else None


def api_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """FRESH_GITHUB_API_URL (GitHub Enterprise: https://HOST/api/v3), else api.github.com."""
    env = os.environ if env is None else env
    return (env.get(API_URL_VAR) or DEFAULT_API_URL).rstrip("/")


def token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The supervisor's GitHub token (GITHUB_TOKEN, then GH_TOKEN), or None."""
    env = os.environ if env is None else env
    for name in TOKEN_VARS:
        if env.get(name):
            return env[name]
    return None


def github_hosts(api_url: str) -> tuple[str, ...]:
    """The web hosts whose remotes the API at `api_url` serves."""
    host = (urlsplit(api_url).hostname or "").lower()
    if host in ("", "api.github.com"):
        return ("github.com",)
    return ("github.com", host)  # GitHub Enterprise serves the API on the web host


def pr_body(task: str, summary: str, tests_line: str, cost_usd: float) -> str:
    """The pull request's description: the task, the agent's summary, the tests and the cost."""
    summary = summary.strip() or "(the agent gave no summary)"
    body = (
        f"## Task\n\n{task.strip()}\n\n"
        f"## What the agent did\n\n{summary}\n\n"
        f"## Tests\n\n{tests_line.strip() or 'no test results'}\n\n"
        f"## Cost\n\n${cost_usd:.4f} of model calls\n\n"
        "---\n_Opened by fresh-sandbox: an autonomous agent wrote this change in an isolated "
        "sandbox and the tests passed before the push. Review it before merging._\n"
    )
    if len(body) > MAX_BODY_CHARS:
        body = body[:MAX_BODY_CHARS] + "\n\n(truncated)\n"
    return body


# -- the call -------------------------------------------------------------------------------


def open_pull_request(
    *, remote_url: str, branch: str, base: str, title: str, body: str, labels: Sequence[str],
    token: str | None, api_url: str | None = None,
) -> PullRequest:
    """Open (or find the already open) pull request of `branch` into `base`, then label it."""
    api = (api_url or api_url_from_env()).rstrip("/")
    repo = github_repo_from_remote(remote_url, github_hosts(api))
    if repo is None:
        raise NotOnGitHub(f"the remote {remote_url} is not a GitHub repository",
                          hint=f"no pull request is opened; {_STAYS}")
    if not token:
        raise TokenMissing(f"no GitHub token to open a pull request for {branch}",
                           hint=f"set GITHUB_TOKEN (or GH_TOKEN) for the supervisor; {_STAYS}")
    owner, name = repo
    with _client(api, token) as client:
        pr = _create(client, owner, name, branch=branch, base=base, title=title, body=body)
        labelled = _label(client, owner, name, pr.number, labels)
    return PullRequest(pr.number, pr.url, labelled)


def pull_request_for_push(*, remote_url: str, branch: str, base: str, task: str, summary: str,
                          tests_line: str, cost_usd: float, labels: Sequence[str]) -> PullRequest | None:
    """Open (or find) the PR of a pushed branch when origin is on GitHub; None when it is not."""
    api_url = api_url_from_env()
    if github_repo_from_remote(remote_url, github_hosts(api_url)) is None:
        return None
    return open_pull_request(
        remote_url=remote_url, branch=branch, base=base, title=task[:250],
        body=pr_body(task, summary, tests_line, cost_usd), labels=labels, token=token_from_env(),
        api_url=api_url,
    )


def _client(api: str, token: str) -> httpx2.Client:
    import httpx2

    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "fresh-sandbox",
    }
    # retries: connection attempts only; a POST that reached GitHub is never repeated.
    return httpx2.Client(base_url=api, headers=headers, timeout=30.0,
                         transport=httpx2.HTTPTransport(retries=2))


def _create(client: httpx2.Client, owner: str, repo: str, *, branch: str, base: str, title: str,
            body: str) -> PullRequest:
    payload = {"title": title, "head": branch, "base": base, "body": body}
    response = _send(client, "POST", f"/repos/{owner}/{repo}/pulls", json=payload)
    if response.status_code == 201:
        return _pull_from(response.json())
    if response.status_code == 422:  # most often: a pull request for this head already exists
        existing = _find_open(client, owner, repo, branch)
        if existing is not None:
            return existing
    raise _refusal(response, f"open a pull request for {branch} on {owner}/{repo}")


def _find_open(client: httpx2.Client, owner: str, repo: str, branch: str) -> PullRequest | None:
    params = {"head": f"{owner}:{branch}", "state": "open"}
    response = _send(client, "GET", f"/repos/{owner}/{repo}/pulls", params=params)
    if response.status_code != 200:
        raise _refusal(response, f"look up the pull request of {branch} on {owner}/{repo}")
    pulls = response.json()
    return _pull_from(pulls[0]) if isinstance(pulls, list) and pulls else None


def _label(client: httpx2.Client, owner: str, repo: str, number: int, labels: Sequence[str]) -> bool:
    if not labels:
        return True
    path = f"/repos/{owner}/{repo}/issues/{number}/labels"
    response = _send(client, "POST", path, json={"labels": list(labels)})
    # The pull request is open either way; an unlabelled one is still worth returning.
    return response.status_code == 200


def _send(client: httpx2.Client, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    import httpx2

    try:
        return client.request(method, quote(path, safe="/:@"), **kwargs)
    except httpx2.HTTPError as exc:
        raise ForgeUnreachable(
            f"GitHub API at {client.base_url} unreachable: {type(exc).__name__}",
            hint=f"check the network (or FRESH_GITHUB_API_URL) and open the pull request later; {_STAYS}",
        ) from exc


def _pull_from(data: Any) -> PullRequest:
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise ForgeRejected("GitHub answered with something that is not a pull request",
                            hint=f"check FRESH_GITHUB_API_URL; {_STAYS}")
    return PullRequest(number=data["number"], url=str(data.get("html_url") or data.get("url") or ""))


def _refusal(response: httpx2.Response, what: str) -> ForgeError:
    status, detail = response.status_code, _detail(response)
    if status in (401, 403):
        return TokenRejected(
            f"GitHub refused the token (HTTP {status}) to {what}{detail}",
            hint=f"check GITHUB_TOKEN: it needs pull-request write access to the repository; {_STAYS}",
        )
    if status == 404:
        return ForgeRejected(f"GitHub found no repository to {what} (HTTP 404){detail}",
                             hint=f"check the remote URL and that the token can see the repository; {_STAYS}")
    return ForgeRejected(f"GitHub could not {what} (HTTP {status}){detail}", hint=_STAYS)


def _detail(response: httpx2.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message") or "")]
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    text = "; ".join(p for p in parts if p)
    return f": {text[:300]}" if text else ""
