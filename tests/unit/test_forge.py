"""forge: GitHub remotes, PR bodies, and pull requests opened over real HTTP against FakeGitHub."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import forge
from orchestrator.errors import PushError
from orchestrator.fake_github import FakeGitHub
from orchestrator.forge import (
    ForgeRejected, ForgeUnreachable, NotOnGitHub, PullRequest, TokenMissing, TokenRejected,
    github_repo_from_remote, open_pull_request, pr_body,
)

TOKEN = "ghp_test_0123456789"
REMOTE = "https://github.com/acme/inventory.git"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as server:
        yield server


def _open(gh: FakeGitHub, **overrides: Any) -> PullRequest:
    args: dict[str, Any] = dict(remote_url=REMOTE, branch="fresh/r1/a1-low-stock", base="main",
                                title="Expose low_stock", body="body", labels=["autonomous"], token=TOKEN,
                                api_url=gh.api_url)
    args.update(overrides)
    return open_pull_request(**args)


@pytest.mark.parametrize("url", [
    "https://github.com/acme/inventory.git",
    "https://github.com/acme/inventory",
    "https://github.com/acme/inventory/",
    "https://x-access-token:secret@github.com/acme/inventory.git",
    "http://www.github.com/acme/inventory.git",
    "git@github.com:acme/inventory.git",
    "git@github.com:acme/inventory",
    "ssh://git@github.com/acme/inventory.git",
    "ssh://git@github.com:22/acme/inventory.git",
    "git://github.com/acme/inventory.git",
    "  https://GitHub.com/acme/inventory.git\n",
])
def test_github_remote_forms(url: str) -> None:
    assert github_repo_from_remote(url) == ("acme", "inventory")


@pytest.mark.parametrize("url", [
    "/srv/git/inventory.git", "file:///srv/git/inventory.git", "https://gitlab.com/acme/inventory.git",
    "https://github.com/acme", "https://github.com/acme/inventory/tree/main", "git@gitlab.com:acme/x.git",
    "https://github.com.evil.example/acme/inventory.git", "",
])
def test_other_remotes_are_not_github(url: str) -> None:
    assert github_repo_from_remote(url) is None


def test_enterprise_host_comes_from_the_api_url() -> None:
    hosts = forge.github_hosts("https://ghe.example.com/api/v3")
    assert github_repo_from_remote("git@ghe.example.com:team/app.git", hosts) == ("team", "app")
    assert forge.github_hosts("https://api.github.com") == ("github.com",)


def test_environment_lookups() -> None:
    assert forge.token_from_env({"GH_TOKEN": "b"}) == "b"
    assert forge.token_from_env({"GITHUB_TOKEN": "a", "GH_TOKEN": "b"}) == "a"
    assert forge.token_from_env({"GITHUB_TOKEN": ""}) is None
    assert forge.api_url_from_env({}) == "https://api.github.com"
    assert forge.api_url_from_env({"FRESH_GITHUB_API_URL": "https://ghe.example.com/api/v3/"}) == \
        "https://ghe.example.com/api/v3"


def test_pr_body_gives_task_summary_tests_and_cost() -> None:
    body = pr_body("Expose low_stock", "Added a command.", "3 tests, 0 failures", 0.01234)
    for part in ("## Task", "Expose low_stock", "Added a command.", "3 tests, 0 failures", "$0.0123"):
        assert part in body
    assert "no summary" in pr_body("t", "  ", "", 0)
    assert len(pr_body("t", "x" * 100_000, "", 0)) < 65_536


def test_opens_a_labelled_pull_request(gh: FakeGitHub) -> None:
    pr = _open(gh)
    assert pr == PullRequest(1, "https://github.com/acme/inventory/pull/1", labelled=True)
    [pull] = gh.pulls("acme", "inventory")
    assert pull["head"]["ref"] == "fresh/r1/a1-low-stock" and pull["base"]["ref"] == "main"
    assert pull["title"] == "Expose low_stock" and pull["body"] == "body"
    assert [label["name"] for label in pull["labels"]] == ["autonomous"]
    first = gh.requests[0]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"


def test_an_existing_pull_request_is_returned(gh: FakeGitHub) -> None:
    first = _open(gh)
    again = _open(gh, labels=["autonomous", "nightly"])
    assert again.number == first.number and again.url == first.url
    [pull] = gh.pulls("acme", "inventory")
    assert [label["name"] for label in pull["labels"]] == ["autonomous", "nightly"]
    assert [(r.method, r.path) for r in gh.requests][2:4] == [
        ("POST", "/repos/acme/inventory/pulls"), ("GET", "/repos/acme/inventory/pulls")]
    assert gh.requests[3].query == {"head": "acme:fresh/r1/a1-low-stock", "state": "open"}


def test_labelled_issues_can_be_listed(gh: FakeGitHub) -> None:
    gh.add_issue("acme", "inventory", "Add a CSV export", labels=("fresh",))
    gh.add_issue("acme", "inventory", "Unrelated")
    _open(gh, labels=["fresh"])
    import httpx2

    response = httpx2.get(f"{gh.api_url}/repos/acme/inventory/issues", params={"labels": "fresh", "state": "open"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
    titles = [item["title"] for item in response.json()]
    assert titles == ["Add a CSV export", "Expose low_stock"]
    assert "pull_request" in response.json()[1]


def test_no_labels_means_no_label_call(gh: FakeGitHub) -> None:
    assert _open(gh, labels=[]).labelled
    assert len(gh.requests) == 1


def test_missing_token_is_a_clear_error_that_sends_nothing(gh: FakeGitHub) -> None:
    with pytest.raises(TokenMissing) as caught:
        _open(gh, token=None)
    assert "GITHUB_TOKEN" in caught.value.hint and "stays pushed" in caught.value.hint
    assert isinstance(caught.value, PushError)
    assert gh.requests == []


def test_rejected_token(gh: FakeGitHub) -> None:
    with pytest.raises(TokenRejected) as caught:
        _open(gh, token="ghp_wrong")
    assert "401" in caught.value.message and "Bad credentials" in caught.value.message
    assert "stays pushed" in caught.value.hint and "ghp_wrong" not in str(caught.value)


def test_forbidden_token(gh: FakeGitHub) -> None:
    gh.fail_next(403, "Resource not accessible by personal access token")
    with pytest.raises(TokenRejected, match="403"):
        _open(gh)


def test_422_without_an_existing_pull_request(gh: FakeGitHub) -> None:
    gh.fail_next(422, "No commits between main and fresh/r1/a1-low-stock")
    with pytest.raises(ForgeRejected, match="No commits between"):
        _open(gh)


def test_no_such_repository(gh: FakeGitHub) -> None:
    gh.fail_next(404, "Not Found")
    with pytest.raises(ForgeRejected) as caught:
        _open(gh)
    assert "can see the repository" in caught.value.hint


def test_a_label_failure_keeps_the_pull_request(gh: FakeGitHub) -> None:
    gh.fail_next(403, "Resource not accessible by integration", path_endswith="/labels")
    pr = _open(gh)
    assert pr.number == 1 and not pr.labelled
    assert len(gh.pulls("acme", "inventory")) == 1


def test_server_error(gh: FakeGitHub) -> None:
    gh.fail_next(502, "Bad gateway")
    with pytest.raises(ForgeRejected, match="HTTP 502"):
        _open(gh)


def test_not_on_github() -> None:
    with pytest.raises(NotOnGitHub):
        open_pull_request(remote_url="/srv/git/x.git", branch="b", base="main", title="t", body="b",
                          labels=[], token=TOKEN, api_url="http://127.0.0.1:9")


def test_unreachable_api() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ForgeUnreachable) as caught:
        open_pull_request(remote_url=REMOTE, branch="b", base="main", title="t", body="b", labels=[],
                          token=TOKEN, api_url=f"http://127.0.0.1:{port}")
    assert "stays pushed" in caught.value.hint


def test_enterprise_api_path_prefix() -> None:
    with FakeGitHub(token=TOKEN) as gh:
        with pytest.raises(ForgeRejected, match="404"):  # the prefix is kept: /api/v3/repos/...
            open_pull_request(remote_url=REMOTE, branch="b", base="main", title="t", body="b", labels=[],
                              token=TOKEN, api_url=f"{gh.api_url}/api/v3")
        assert gh.requests[0].path == "/api/v3/repos/acme/inventory/pulls"
