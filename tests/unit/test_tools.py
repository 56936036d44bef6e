from __future__ import annotations

import json

import pytest

from orchestrator.model import ToolCall
from orchestrator.tools import (
    TOOL_SCHEMAS,
    BashCall,
    SubmitCall,
    ToolCallError,
    format_observation,
    parse_tool_call,
    shorten,
    strip_control,
)


def call(name: str, arguments: str) -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


def test_schemas_are_openai_function_tools() -> None:
    names = [tool["function"]["name"] for tool in TOOL_SCHEMAS]
    assert names == ["bash", "submit"]
    for tool, argument in zip(TOOL_SCHEMAS, ["command", "summary"]):
        assert tool["type"] == "function"
        parameters = tool["function"]["parameters"]
        assert parameters["required"] == [argument]
        assert parameters["properties"][argument]["type"] == "string"
    json.dumps(TOOL_SCHEMAS)  # must go on the wire as is


def test_parses_bash_and_submit() -> None:
    assert parse_tool_call(call("bash", '{"command": "ls -la"}')) == BashCall("ls -la")
    assert parse_tool_call(call("submit", '{"summary": "fixed it"}')) == SubmitCall("fixed it")


def test_extra_arguments_are_ignored() -> None:
    assert parse_tool_call(call("bash", '{"command": "ls", "timeout": 5}')) == BashCall("ls")


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("bash", "{not json", "not valid JSON"),
        ("bash", "", "not valid JSON"),
        ("bash", '["ls"]', "JSON object"),
        ("bash", "{}", "missing required argument `command`"),
        ("bash", '{"command": 3}', "must be a string, got int"),
        ("bash", '{"command": "  \\n"}', "empty"),
        ("submit", '{"summary": null}', "must be a string"),
        ("python", '{"code": "1"}', "unknown tool 'python'"),
    ],
)
def test_malformed_calls_explain_themselves(name: str, arguments: str, expected: str) -> None:
    with pytest.raises(ToolCallError) as info:
        parse_tool_call(call(name, arguments))
    assert expected in info.value.message


def test_tool_call_error_is_not_a_user_error() -> None:
    from orchestrator.errors import FreshError

    assert not issubclass(ToolCallError, FreshError)


def test_strip_control_removes_escapes_and_controls() -> None:
    text = "\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok\x00\x07\x08 tab\there\nnext \x9b2Jx \u202eevil"
    assert strip_control(text) == "red ok tab\there\nnext x evil"


def test_strip_control_collapses_carriage_returns() -> None:
    assert strip_control("a\r\nb\n 10%\r 50%\r100%\nend\r") == "a\nb\n100%\nend"


def test_unterminated_osc_does_not_swallow_following_lines() -> None:
    assert strip_control("\x1b]0;title\nkept") == "\nkept"


def test_observation_has_exit_code_and_clean_output() -> None:
    text = format_observation(1, b"\x1b[32mfail\xff\x1b[0m\n", timed_out=False, truncated=False)
    assert text == "exit code: 1\nfail\ufffd\n"


def test_observation_for_timeout_and_no_output() -> None:
    text = format_observation(None, b"", timed_out=True, truncated=False, timeout_s=30)
    assert text == "timed out after 30 s, killed\n(no output)"
    assert format_observation(None, b"", True, False).startswith("timed out, killed")


def test_observation_says_when_the_sandbox_truncated() -> None:
    text = format_observation(0, b"x", timed_out=False, truncated=True)
    assert "only its start was captured" in text


def test_long_output_keeps_head_and_tail() -> None:
    output = ("H" * 100 + "M" * 1000 + "T" * 100).encode()
    text = format_observation(0, output, False, False, max_chars=200)
    body = text.split("\n", 1)[1]
    assert body.startswith("H" * 100)
    assert body.endswith("T" * 100)
    assert "[... 1000 characters cut ...]" in body


def test_shorten_edges() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 0) == "\n[... 4 characters cut ...]\n"
    assert shorten("abcd", 1) == "\n[... 3 characters cut ...]\nd"


def test_signal_exit_is_named() -> None:
    assert format_observation(-9, b"", False, False).startswith("killed by SIGKILL (out of memory?)")
    assert format_observation(-15, b"", False, False).startswith("killed by SIGTERM")


def test_shell_signal_status_is_named() -> None:
    assert format_observation(137, b"", False, False).startswith("exit code: 137 (killed by SIGKILL, out of memory?)")
    assert format_observation(130, b"", False, False).startswith("exit code: 130 (killed by SIGINT)")
    assert format_observation(200, b"", False, False).startswith("exit code: 200\n")
