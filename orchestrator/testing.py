"""Fakes shipped with the package, for tests and demos.

`ScriptedModelServer` is a real OpenAI-compatible HTTP server on 127.0.0.1 that answers
from a script, so the real `openai` SDK can be exercised over loopback:

    with ScriptedModelServer([Bash("ls"), Submit("done")]) as srv:
        model = OpenAIModel("scripted", api_key="k", base_url=srv.base_url)

Turn selection is stateless: the conversation is named by its first user message and the
turn is the number of assistant messages already in the request. The one exception is
`Fail`: consecutive Fails before a turn are served one per request (so the SDK's retry gets
the next one), and a script ending in a Fail keeps failing. Past the end: Submit("done").

Run it as a process: `python -m orchestrator.testing serve --script FILE.json --port N`
prints the base URL on the first line of stdout.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from orchestrator.loopback import LoopbackServer
from orchestrator.replay import first_user_text


@dataclass(frozen=True)
class Bash:
    command: str


@dataclass(frozen=True)
class Submit:
    summary: str


@dataclass(frozen=True)
class Say:
    """Plain content, no tool call."""

    text: str


@dataclass(frozen=True)
class RawToolCall:
    """A tool call with arguments sent verbatim, to test malformed calls."""

    name: str
    arguments_text: str


@dataclass(frozen=True)
class Fail:
    """An HTTP error (or any raw answer): `body` as dict is sent as JSON, as str verbatim."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    """The server drops the connection mid-answer (a stream after its first chunks)."""


Failure = Fail | Hangup
Turn = Bash | Submit | Say | RawToolCall | Fail | Hangup
Script = list[Turn] | dict[str, list[Turn]]


@dataclass(frozen=True)
class _Position:
    fails: tuple[Failure, ...]
    turn: Turn | None  # None: the script ended with these fails


def _positions(turns: list[Turn]) -> list[_Position]:
    positions: list[_Position] = []
    fails: list[Failure] = []
    for turn in turns:
        if isinstance(turn, (Fail, Hangup)):
            fails.append(turn)
        else:
            positions.append(_Position(tuple(fails), turn))
            fails = []
    if fails:
        positions.append(_Position(tuple(fails), None))
    return positions


class ScriptedModelServer(LoopbackServer):
    """An OpenAI-compatible chat-completions server on loopback that follows a script."""

    thread_name = "scripted-model"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def __init__(
        self,
        script: Script,
        *,
        port: int = 0,
        expected_key: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int = 20,
        omit_usage: bool = False,
        delay_s: float = 0.0,
        model_ids: tuple[str, ...] = ("scripted",),
    ) -> None:
        self.script: dict[str, list[_Position]] | list[_Position] = (
            {key: _positions(turns) for key, turns in script.items()}
            if isinstance(script, dict)
            else _positions(script)
        )
        super().__init__(port)
        self.expected_key = expected_key
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.omit_usage = omit_usage
        self.delay_s = delay_s
        self.model_ids = model_ids
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._fails_served: dict[tuple[str, int], int] = {}
        self._in_flight = 0
        self.max_concurrent = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- what tests look at ------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every parsed chat-completions request body received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """The headers of those requests (names lower-cased), in the same order."""
        with self._lock:
            return [dict(headers) for headers in self._headers]

    # -- serving -----------------------------------------------------------------------------

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self._requests.append(body)
            self._headers.append(headers)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def choose(self, body: dict[str, Any]) -> tuple[Turn, int]:
        """The turn that answers this request, and its index in the conversation."""
        messages = body.get("messages") or []
        first_user = first_user_text(messages)
        index = sum(1 for message in messages if isinstance(message, dict) and message.get("role") == "assistant")
        positions = self._positions_for(first_user)
        if positions is None:
            return Fail(400, {"error": {"message": f"no script for conversation {first_user[:80]!r}"}}), index
        if index >= len(positions):
            return Submit("done"), index
        position = positions[index]
        with self._lock:
            served = self._fails_served.get((first_user, index), 0)
            if served < len(position.fails):
                self._fails_served[(first_user, index)] = served + 1
                return position.fails[served], index
        if position.turn is None:
            return position.fails[-1], index  # a script ending in a failure keeps failing
        return position.turn, index

    def _positions_for(self, first_user: str) -> list[_Position] | None:
        if isinstance(self.script, list):
            return self.script
        for key, positions in self.script.items():
            if key in first_user:
                return positions
        return None

    def usage(self, raw_size: int) -> dict[str, int]:
        prompt = self.prompt_tokens if self.prompt_tokens is not None else max(1, raw_size // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.completion_tokens,
            "total_tokens": prompt + self.completion_tokens,
        }


def _message_for(turn: Turn, index: int) -> tuple[dict[str, Any], str]:
    """The assistant message for a turn, and its finish reason."""
    if isinstance(turn, Say):
        return {"role": "assistant", "content": turn.text}, "stop"
    if isinstance(turn, Bash):
        name, arguments = "bash", json.dumps({"command": turn.command})
    elif isinstance(turn, Submit):
        name, arguments = "submit", json.dumps({"summary": turn.summary})
    elif isinstance(turn, RawToolCall):
        name, arguments = turn.name, turn.arguments_text
    else:  # failures are answered before this
        raise TypeError(f"not an answer turn: {turn!r}")
    call = {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _chunks(message: dict[str, Any], finish_reason: str) -> Iterator[dict[str, Any]]:
    """Stream deltas as a real server does: role first, content and arguments in pieces."""
    yield {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    content = message.get("content")
    if content:
        middle = len(content) // 2
        for piece in (content[:middle], content[middle:]):
            yield {"index": 0, "delta": {"content": piece}, "finish_reason": None}
    for position, call in enumerate(message.get("tool_calls", [])):
        head = {"index": position, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        yield {"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}
        arguments = call["function"]["arguments"]
        step = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), step):
            piece = {"index": position, "function": {"arguments": arguments[start:start + step]}}
            yield {"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}
    yield {"index": 0, "delta": {}, "finish_reason": finish_reason}


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedModelServer
    protocol_version = "HTTP/1.1"
    # Buffer each answer and send without Nagle's delay: small split writes otherwise meet
    # the client's delayed ACK and cost ~40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests read srv.requests; stderr noise helps nobody

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "scripted"} for name in self.owner.model_ids]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
            return
        if not isinstance(body, dict):
            body = {"_raw": body}
        self.owner._record(body, {name.lower(): value for name, value in self.headers.items()})
        if not self._authorized():
            return
        self.owner._enter()
        try:
            if self.owner.delay_s:
                time.sleep(self.owner.delay_s)
            self._answer(body, len(raw))
        finally:
            self.owner._leave()

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        expected = self.owner.expected_key
        if key and (expected is None or key == expected):
            return True
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}
        self._send_json(401, {"error": error})
        return False

    def _answer(self, body: dict[str, Any], raw_size: int) -> None:
        turn, index = self.owner.choose(body)
        if isinstance(turn, Fail):
            self._send_fail(turn)
            return
        if isinstance(turn, Hangup):
            self._hang_up(bool(body.get("stream")))
            return
        message, finish_reason = _message_for(turn, index)
        usage = None if self.owner.omit_usage else self.owner.usage(raw_size)
        model = str(body.get("model", "scripted"))
        if body.get("stream"):
            options = body.get("stream_options") or {}
            self._send_stream(model, index, message, finish_reason, usage if options.get("include_usage") else None)
            return
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{index}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        }
        if usage is not None:
            answer["usage"] = usage
        self._send_json(200, answer)

    def _send_fail(self, fail: Fail) -> None:
        body = fail.body
        if body is None:
            body = {"error": {"message": f"scripted failure {fail.status}", "type": "scripted", "code": None}}
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        content_type = "text/plain" if isinstance(body, str) else "application/json"
        self._send(fail.status, data, content_type, fail.headers)

    def _hang_up(self, stream: bool) -> None:
        self.close_connection = True
        self.send_response(200)
        if stream:
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            piece = {"index": 0, "delta": {"role": "assistant", "content": "partial"}, "finish_reason": None}
            self._event({"id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": 0, "model": "x", "choices": [piece]})
        else:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"id": "chatcmpl-cut", "choi')
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def _send_stream(
        self, model: str, index: int, message: dict[str, Any], finish_reason: str, usage: dict[str, int] | None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": f"chatcmpl-{index}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        for choice in _chunks(message, finish_reason):
            self._event({**base, "choices": [choice]})
        if usage is not None:
            self._event({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", {})

    def _send(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        if not any(name.lower() == "content-type" for name in headers):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# -- the script as JSON, and the CLI ----------------------------------------------------------


def turn_from_json(item: Any) -> Turn:
    """One turn from its JSON form: {"bash": ...}, {"submit": ...}, {"say": ...},
    {"fail": STATUS, "body": ..., "headers": {...}}, {"tool": NAME, "arguments": TEXT}."""
    if not isinstance(item, dict):
        raise ValueError(f"a turn must be a JSON object, got {item!r}")
    if "bash" in item:
        return Bash(str(item["bash"]))
    if "submit" in item:
        return Submit(str(item["submit"]))
    if "say" in item:
        return Say(str(item["say"]))
    if "fail" in item:
        headers = item.get("headers") or {}
        return Fail(int(item["fail"]), item.get("body"), {str(k): str(v) for k, v in headers.items()})
    if "hangup" in item:
        return Hangup()
    if "tool" in item:
        return RawToolCall(str(item["tool"]), str(item.get("arguments", "")))
    raise ValueError(f"unknown turn {item!r}; use bash, submit, say, fail or tool")


def script_from_json(data: Any) -> Script:
    """A script from JSON: a list of turns, or an object mapping a first-message substring to one."""
    if isinstance(data, list):
        return [turn_from_json(item) for item in data]
    if isinstance(data, dict):
        return {str(key): [turn_from_json(item) for item in turns] for key, turns in data.items()}
    raise ValueError("a script is a JSON list of turns or an object of lists")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scripted OpenAI-compatible model on 127.0.0.1")
    serve.add_argument("--script", required=True, help="JSON file: a list of turns or an object of lists")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--key", default=None, help="the only API key accepted (default: any)")
    serve.add_argument("--prompt-tokens", type=int, default=None)
    serve.add_argument("--completion-tokens", type=int, default=20)
    serve.add_argument("--delay", type=float, default=0.0, help="seconds to hold each answer")
    args = parser.parse_args(argv)
    try:
        with open(args.script, encoding="utf-8") as file:
            script = script_from_json(json.load(file))
    except (OSError, ValueError) as exc:
        print(f"cannot read script {args.script}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = ScriptedModelServer(
        script, port=args.port, expected_key=args.key, prompt_tokens=args.prompt_tokens,
        completion_tokens=args.completion_tokens, delay_s=args.delay,
    )
    with server:
        print(server.base_url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
