"""The GitHub source against the loopback fake that the forge tests use too."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError, PreflightError
from orchestrator.fake_github import FakeGitHub
from orchestrator.tasks.github import issue_tasks, open_pull_requests

REMOTE = "git@github.com:acme/shop.git"


def test_labelled_open_issues_become_tasks_and_pull_requests_do_not() -> None:
    with FakeGitHub(token="t") as gh:
        gh.add_issue("acme", "shop", "Export to CSV", "People ask for it.", labels=("autonomous", "enhancement"))
        gh.add_issue("acme", "shop", "Unlabelled", labels=("bug",))
        gh.add_issue("acme", "shop", "Docs are stale", labels=("autonomous", "documentation"))
        tasks = issue_tasks(REMOTE, "autonomous", token="t", api_url=gh.api_url)
        request = gh.requests[-1]
    assert [(t.key, t.title, t.kind) for t in tasks] == [
        ("github:acme/shop#1", "Export to CSV", "feature"),
        ("github:acme/shop#3", "Docs are stale", "docs")]
    assert tasks[0].description == "People ask for it." and tasks[0].source == "github"
    assert request.query["labels"] == "autonomous" and {k.lower(): v for k, v in request.headers.items()}["authorization"] == "Bearer t"


def test_open_pull_requests_are_listed_by_head_branch() -> None:
    from orchestrator.forge import open_pull_request

    with FakeGitHub(token="t") as gh:
        open_pull_request(remote_url=REMOTE, branch="fresh/r1/a1-export-to-csv", base="main",
                          title="Export to CSV", body="", labels=(), token="t", api_url=gh.api_url)
        assert open_pull_requests(REMOTE, token="t", api_url=gh.api_url) == [
            ("fresh/r1/a1-export-to-csv", "Export to CSV")]


def test_refused_token_and_non_github_remote_have_hints() -> None:
    with FakeGitHub(token="t") as gh:
        with pytest.raises(PreflightError, match="HTTP 401") as err:
            issue_tasks(REMOTE, "autonomous", token="wrong", api_url=gh.api_url)
        assert "GITHUB_TOKEN" in err.value.hint
    with pytest.raises(ConfigError, match="not a GitHub repository"):
        issue_tasks("/srv/git/shop.git", "autonomous", token="t", api_url="https://api.github.com")
