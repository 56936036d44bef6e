"""A small GitHub REST fake on 127.0.0.1, for tests and demos.

    with FakeGitHub(token="t") as gh:
        open_pull_request(..., token="t", api_url=gh.api_url)
        assert gh.pulls("o", "r")[0]["labels"] == [{"name": "autonomous"}]

It serves the few endpoints fresh-sandbox uses, with GitHub's status codes and shapes:
  POST /repos/{o}/{r}/pulls                  201, or 422 when an open PR has the same head
  GET  /repos/{o}/{r}/pulls?head=o:b&state=  the matching pull requests
  POST /repos/{o}/{r}/issues/{n}/labels      200 with the issue's labels, 404 for no issue
  GET  /repos/{o}/{r}/issues?labels=a,b&state=open   issues and pull requests, like GitHub
Every request needs `Authorization: Bearer <token>` (or `token <token>`), else 401.
Issues and pull requests share one number sequence per repository, as on GitHub.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from orchestrator.loopback import LoopbackServer


@dataclass(frozen=True)
class Request:
    """One request the fake received; `body` is the parsed JSON or None."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


_PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")
_ISSUES = re.compile(r"^/repos/([^/]+)/([^/]+)/issues$")
_LABELS = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/labels$")


class FakeGitHub(LoopbackServer):
    """GitHub's pulls, issues and labels endpoints, in memory, over real HTTP on loopback."""

    thread_name = "fake-github"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def __init__(self, token: str = "fake-token", *, port: int = 0) -> None:
        self.token = token
        super().__init__(port)
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], list[dict[str, Any]]] = {}  # issues and pulls per repo
        self._requests: list[Request] = []
        self._failures: list[tuple[str, int, dict[str, Any]]] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests arrange and look at -------------------------------------------------------

    def add_issue(self, owner: str, repo: str, title: str, body: str = "", labels: tuple[str, ...] = ()) -> int:
        """Seed an open issue; returns its number."""
        with self._lock:
            items = self._items.setdefault((owner, repo), [])
            number = len(items) + 1
            items.append({"number": number, "title": title, "body": body, "state": "open",
                          "labels": [_label(name) for name in labels],
                          "html_url": f"https://github.com/{owner}/{repo}/issues/{number}"})
            return number

    def fail_next(self, status: int, message: str = "scripted failure", *, path_endswith: str = "") -> None:
        """Answer the next request (whose path ends so) with this status; queued, one per request."""
        with self._lock:
            self._failures.append((path_endswith, status, {"message": message}))

    def pulls(self, owner: str, repo: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._items.get((owner, repo), []) if "pull_request" in item]

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    # -- serving -----------------------------------------------------------------------------

    def _record(self, request: Request) -> tuple[int, Any] | None:
        with self._lock:
            self._requests.append(request)
            for index, (suffix, status, payload) in enumerate(self._failures):
                if request.path.endswith(suffix):
                    del self._failures[index]
                    return status, payload
            return None

    def route(self, request: Request) -> tuple[int, Any]:
        """The status and JSON answer for an authorised request."""
        if match := _PULLS.match(request.path):
            key = (match[1], match[2])
            if request.method == "POST":
                return self._create_pull(key, request.body)
            if request.method == "GET":
                return 200, self._list_pulls(key, request.query)
        if (match := _ISSUES.match(request.path)) and request.method == "GET":
            return 200, self._list_issues((match[1], match[2]), request.query)
        if (match := _LABELS.match(request.path)) and request.method == "POST":
            return self._add_labels((match[1], match[2]), int(match[3]), request.body)
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}

    def _create_pull(self, key: tuple[str, str], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not all(isinstance(body.get(f), str) and body[f] for f in ("title", "head", "base")):
            return 422, {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "missing_field"}]}
        owner, repo = key
        with self._lock:
            items = self._items.setdefault(key, [])
            if any(item.get("head", {}).get("ref") == body["head"] and item["state"] == "open" for item in items):
                error = {"resource": "PullRequest", "code": "custom",
                         "message": f"A pull request already exists for {owner}:{body['head']}."}
                return 422, {"message": "Validation Failed", "errors": [error]}
            number = len(items) + 1
            pull = {
                "number": number, "state": "open", "title": body["title"], "body": body.get("body") or "",
                "head": {"ref": body["head"], "label": f"{owner}:{body['head']}"}, "base": {"ref": body["base"]},
                "labels": [], "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
                "url": f"{self.api_url}/repos/{owner}/{repo}/pulls/{number}",
                "pull_request": {"html_url": f"https://github.com/{owner}/{repo}/pull/{number}"},
            }
            items.append(pull)
            return 201, pull

    def _list_pulls(self, key: tuple[str, str], query: dict[str, str]) -> list[dict[str, Any]]:
        state, head = query.get("state", "open"), query.get("head")
        with self._lock:
            return [item for item in self._items.get(key, []) if "pull_request" in item
                    and (state == "all" or item["state"] == state)
                    and (head is None or item["head"]["label"] == head)]

    def _list_issues(self, key: tuple[str, str], query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        wanted = {name for name in query.get("labels", "").split(",") if name}
        with self._lock:
            return [item for item in self._items.get(key, [])
                    if (state == "all" or item["state"] == state)
                    and wanted <= {label["name"] for label in item["labels"]}]

    def _add_labels(self, key: tuple[str, str], number: int, body: Any) -> tuple[int, Any]:
        names = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return 422, {"message": "Invalid request: labels must be a list of strings"}
        with self._lock:
            for item in self._items.get(key, []):
                if item["number"] == number:
                    have = {label["name"] for label in item["labels"]}
                    item["labels"] += [_label(name) for name in names if name not in have]
                    return 200, item["labels"]
        return 404, {"message": "Not Found"}


def _label(name: str) -> dict[str, Any]:
    return {"name": name, "color": "ededed", "default": False}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(400, {"message": "Problems parsing JSON"})
            return
        request = Request(method, unquote(parts.path), query,
                          {name.lower(): value for name, value in self.headers.items()}, body)
        failure = self.owner._record(request)
        if not self._authorized(request.headers.get("authorization", "")):
            self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        elif failure is not None:
            self._send(*failure)
        else:
            self._send(*self.owner.route(request))

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() in ("bearer", "token") and bool(token) and token == self.owner.token

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
