"""OpenAIModel against the scripted server over real loopback HTTP, through the real SDK."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from orchestrator.errors import ConfigError, ModelError
from orchestrator.model import Completion, OpenAIModel, ToolCall, Usage
from orchestrator.testing import Bash, Fail, Hangup, RawToolCall, Say, ScriptedModelServer, Submit, Turn
from orchestrator.tools import TOOL_SCHEMAS

KEY = "sk-test-key"


_shared: list[httpx2.Client] = []


def shared_client() -> httpx2.Client:
    # One client for the module: building one costs ~40 ms (its TLS context), 30 tests add up.
    if not _shared:
        _shared.append(httpx2.Client())
    return _shared[0]


def model(srv: ScriptedModelServer, *, stream: bool = False, max_retries: int = 0, **kwargs: Any) -> OpenAIModel:
    return OpenAIModel(
        "scripted",
        api_key=KEY,
        base_url=srv.base_url,
        stream=stream,
        max_retries=max_retries,
        timeout_s=5,
        http_client=shared_client(),
        **kwargs,
    )


def ask(m: OpenAIModel, task: str = "task") -> Completion:
    return m.complete([{"role": "user", "content": task}], TOOL_SCHEMAS)


@pytest.fixture(scope="module", autouse=True)
def _close_shared_client() -> Iterator[None]:
    yield
    while _shared:
        _shared.pop().close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_conversation_of_tool_calls(stream: bool) -> None:
    with ScriptedModelServer([Bash("ls -la"), Say("thinking"), Submit("all done")], prompt_tokens=123) as srv:
        m = model(srv, stream=stream, max_output_tokens=321)
        messages: list[dict[str, Any]] = [{"role": "user", "content": "fix it"}]
        first = m.complete(messages, TOOL_SCHEMAS)
        assert first.tool_calls == (ToolCall("call_0", "bash", '{"command": "ls -la"}'),)
        assert first.usage == Usage(123, 20)
        assert first.finish_reason == "tool_calls"
        messages += [first.assistant_message(), {"role": "tool", "tool_call_id": "call_0", "content": "exit code: 0"}]
        second = m.complete(messages, TOOL_SCHEMAS)
        assert (second.content, second.tool_calls, second.finish_reason) == ("thinking", (), "stop")
        messages.append(second.assistant_message())
        third = m.complete(messages, TOOL_SCHEMAS)
        assert third.tool_calls[0].name == "submit"
        sent = srv.requests[0]
        assert sent["max_completion_tokens"] == 321
        assert sent["tools"] == TOOL_SCHEMAS
        assert bool(sent.get("stream")) is stream
        if stream:
            assert sent["stream_options"] == {"include_usage": True}


def test_assistant_message_is_wire_form() -> None:
    completion = Completion(None, (ToolCall("c1", "bash", '{"command": "ls"}'),), Usage(1, 2), "tool_calls")
    assert completion.assistant_message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}],
    }
    assert Completion("hi", (), Usage(1, 2), "stop").assistant_message() == {"role": "assistant", "content": "hi"}


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_arguments_arrive_verbatim(stream: bool) -> None:
    with ScriptedModelServer([RawToolCall("bash", '{"command": "ls"')]) as srv:
        assert ask(model(srv, stream=stream)).tool_calls[0].arguments == '{"command": "ls"'


def test_wrong_key_is_refused_with_a_hint() -> None:
    with ScriptedModelServer([Say("hi")], expected_key="right") as srv:
        with pytest.raises(ModelError) as info:
            ask(OpenAIModel("scripted", api_key="wrong", base_url=srv.base_url, max_retries=0))
    assert "401" in info.value.message
    assert "OPENAI_API_KEY" in info.value.hint


def test_unreachable_endpoint_names_the_url_and_env() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m = OpenAIModel("scripted", api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_s=2)
    with pytest.raises(ModelError) as info:
        ask(m)
    assert f"127.0.0.1:{port}" in info.value.message
    assert "OPENAI_BASE_URL" in info.value.hint


def test_base_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedModelServer([Say("from env")]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        m = OpenAIModel("scripted", api_key=KEY, max_retries=0)
        assert m.base_url == srv.base_url
        assert ask(m).content == "from env"


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_retry_after_is_honoured_then_succeeds(stream: bool) -> None:
    turns: list[Turn] = [Fail(429, headers={"Retry-After": "0.1"}), Say("finally")]
    with ScriptedModelServer(turns) as srv:
        started = time.monotonic()
        assert ask(model(srv, stream=stream, max_retries=2)).content == "finally"
        assert time.monotonic() - started >= 0.1
        assert len(srv.requests) == 2


def test_rate_limit_after_retries_is_a_model_error() -> None:
    with ScriptedModelServer([Fail(429, headers={"retry-after-ms": "10"})]) as srv:
        with pytest.raises(ModelError) as info:
            ask(model(srv, max_retries=1))
        assert len(srv.requests) == 2
    assert "rate limited" in info.value.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "HTTP 500 after retries"), (503, "HTTP 503"), (404, "not found"), (403, "refused the API key"), (422, "rejected")],
)
def test_http_errors_translate(status: int, expected: str) -> None:
    with ScriptedModelServer([Fail(status, headers={"retry-after-ms": "1"})]) as srv:
        with pytest.raises(ModelError) as info:
            ask(model(srv, max_retries=1))
    assert expected in info.value.message
    assert info.value.hint


def test_falls_back_to_max_tokens_when_the_server_asks() -> None:
    refusal = {"error": {"message": "Unsupported parameter: 'max_completion_tokens'; use 'max_tokens'"}}
    with ScriptedModelServer([Fail(400, body=refusal), Say("ok")]) as srv:
        m = model(srv, max_output_tokens=50)
        assert ask(m).content == "ok"
        assert [("max_tokens" in r, "max_completion_tokens" in r) for r in srv.requests] == [(False, True), (True, False)]
        later = [{"role": "user", "content": "task"}, {"role": "assistant", "content": "ok"}]
        m.complete(later, TOOL_SCHEMAS)  # remembered: no second refusal
        assert len(srv.requests) == 3
        assert srv.requests[-1]["max_tokens"] == 50


@pytest.mark.parametrize("stream", [False, True])
def test_missing_usage_is_an_error(stream: bool) -> None:
    with ScriptedModelServer([Say("hi")], omit_usage=True) as srv:
        with pytest.raises(ModelError) as info:
            ask(model(srv, stream=stream))
    assert "usage" in info.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"choices": [', "application/json"),
        ('{"id": "x"}', "application/json"),
        ('{"choices": [{"index": 0}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}', "application/json"),
        ("data: {not json\n\n", "text/event-stream"),
        ("<html>proxy error</html>", "text/html"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_responses_are_model_errors(body: str, content_type: str, stream: bool) -> None:
    with ScriptedModelServer([Fail(200, body=body, headers={"Content-Type": content_type})]) as srv:
        with pytest.raises(ModelError):
            ask(model(srv, stream=stream))


@pytest.mark.parametrize("stream", [False, True])
def test_a_dropped_answer_is_a_model_error(stream: bool) -> None:
    with ScriptedModelServer([Hangup()]) as srv:
        with pytest.raises(ModelError) as info:
            ask(model(srv, stream=stream))
    assert "spent" in info.value.hint or "OPENAI_BASE_URL" in info.value.hint


def test_an_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        OpenAIModel("scripted", api_key="", base_url="http://127.0.0.1:9/v1")
    assert "OPENAI_API_KEY" in info.value.hint
