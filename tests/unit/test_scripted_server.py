"""The scripted server speaks plain HTTP, so these tests use only the stdlib client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing import (
    Bash,
    Fail,
    Say,
    ScriptedModelServer,
    Submit,
    script_from_json,
    turn_from_json,
)


def post(srv_url: str, body: dict[str, Any], key: str | None = "k") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(srv_url + "/chat/completions", data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def chat(first_user: str, assistants: int = 0, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "sys"}, {"role": "user", "content": first_user}]
    messages += [{"role": "assistant", "content": "x"}] * assistants
    return {"model": "scripted", "messages": messages, **extra}


def message_of(data: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(data)["choices"][0]["message"]
    return message


def test_turns_follow_the_assistant_count_and_end_in_submit() -> None:
    with ScriptedModelServer([Bash("ls"), Say("hm")]) as srv:
        first = message_of(post(srv.base_url, chat("task"))[2])
        assert first["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"command": "ls"}'}
        assert message_of(post(srv.base_url, chat("task", 1))[2])["content"] == "hm"
        past_end = message_of(post(srv.base_url, chat("task", 2))[2])
        assert json.loads(past_end["tool_calls"][0]["function"]["arguments"]) == {"summary": "done"}
        assert message_of(post(srv.base_url, chat("task", 0))[2]) == first  # stateless


def test_a_dict_script_serves_several_agents() -> None:
    with ScriptedModelServer({"alpha": [Say("A")], "beta": [Say("B")]}) as srv:
        assert message_of(post(srv.base_url, chat("task alpha here"))[2])["content"] == "A"
        assert message_of(post(srv.base_url, chat("the beta task"))[2])["content"] == "B"
        status, _, body = post(srv.base_url, chat("gamma"))
        assert status == 400 and b"no script" in body


def test_usage_is_configurable_and_recorded_requests_are_visible() -> None:
    with ScriptedModelServer([Say("x")], prompt_tokens=11, completion_tokens=3) as srv:
        _, _, body = post(srv.base_url, chat("secret-free task"))
        assert json.loads(body)["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        assert srv.requests[0]["messages"][1]["content"] == "secret-free task"
        assert srv.request_headers[0]["authorization"] == "Bearer k"


def test_default_prompt_tokens_grow_with_the_request() -> None:
    with ScriptedModelServer([Say("x")]) as srv:
        small = json.loads(post(srv.base_url, chat("a"))[2])["usage"]["prompt_tokens"]
        large = json.loads(post(srv.base_url, chat("a" * 4000))[2])["usage"]["prompt_tokens"]
        assert large >= small + 1000


def test_auth_is_required() -> None:
    with ScriptedModelServer([Say("x")], expected_key="right") as srv:
        assert post(srv.base_url, chat("t"), key=None)[0] == 401
        assert post(srv.base_url, chat("t"), key="wrong")[0] == 401
        assert post(srv.base_url, chat("t"), key="right")[0] == 200


def test_fails_are_served_once_each_then_the_turn() -> None:
    with ScriptedModelServer([Fail(429, headers={"Retry-After": "1"}), Fail(500), Say("ok")]) as srv:
        status, headers, _ = post(srv.base_url, chat("t"))
        assert (status, headers["Retry-After"]) == (429, "1")
        assert post(srv.base_url, chat("t"))[0] == 500
        assert post(srv.base_url, chat("t"))[0] == 200
    with ScriptedModelServer([Fail(503)]) as srv:
        assert [post(srv.base_url, chat("t"))[0] for _ in range(3)] == [503, 503, 503]


def test_stream_splits_tool_call_arguments_and_ends_with_usage() -> None:
    with ScriptedModelServer([Bash("echo hello world")], prompt_tokens=5) as srv:
        _, headers, body = post(srv.base_url, chat("t", stream=True, stream_options={"include_usage": True}))
    assert headers["Content-Type"] == "text/event-stream"
    events = [line[len("data: "):] for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 5
    pieces = [
        call["function"]["arguments"]
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls", [])
    ]
    assert len([piece for piece in pieces if piece]) > 1
    assert json.loads("".join(pieces)) == {"command": "echo hello world"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_without_include_usage_has_no_usage() -> None:
    with ScriptedModelServer([Say("hi")]) as srv:
        body = post(srv.base_url, chat("t", stream=True))[2].decode()
    assert '"usage"' not in body


def test_models_endpoint() -> None:
    with ScriptedModelServer([]) as srv:
        request = urllib.request.Request(srv.base_url + "/models", headers={"Authorization": "Bearer k"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "scripted"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.base_url + "/models", timeout=5)
        assert info.value.code == 401


def test_max_concurrent_counts_requests_in_flight() -> None:
    with ScriptedModelServer({"a": [], "b": [], "c": []}, delay_s=0.1) as srv:
        threads = [threading.Thread(target=post, args=(srv.base_url, chat(name))) for name in "abc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert srv.max_concurrent == 3
        assert len(srv.requests) == 3


def test_script_from_json() -> None:
    assert script_from_json([{"bash": "ls"}, {"submit": "s"}, {"say": "t"}]) == [Bash("ls"), Submit("s"), Say("t")]
    assert turn_from_json({"fail": 429, "headers": {"Retry-After": 1}}) == Fail(429, None, {"Retry-After": "1"})
    assert list(script_from_json({"x": [{"say": "a"}]}).keys()) == ["x"]  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        turn_from_json({"dance": 1})


def test_cli_serves_and_prints_its_url_first(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"say": "from a process"}]))
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.testing", "serve", "--script", str(script), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert message_of(post(url, chat("t"))[2])["content"] == "from a process"
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
