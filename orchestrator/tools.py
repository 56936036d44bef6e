"""The tool protocol offered to the model: `bash` and `submit`.

`parse_tool_call` turns what the model sent into a `BashCall` or `SubmitCall`, or raises
`ToolCallError`, whose message is answered back to the model (it is the model's mistake,
not the user's). `format_observation` turns a command's result into the text the model
sees next. The protocol is documented in docs/tools.md.
"""

from __future__ import annotations

import signal

import json
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.model import ToolCall

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": (
                "Run a shell command in your repository (the working directory) inside your "
                "sandbox. There is no network. Each call starts a fresh shell, so `cd` and "
                "exported variables do not carry over: chain them with `&&`. Commands that run "
                "too long are killed. The answer is the exit code and the combined stdout and "
                "stderr, shortened in the middle when long."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command to run."},
                },
                "required": ["command"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "submit",
            "description": (
                "Declare the task done. The supervisor then commits your changes, runs the "
                "tests and pushes. Call it once, when your work is complete."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "summary": {
                        "type": "string",
                        "description": "What you changed and why, in a few sentences.",
                    },
                },
                "required": ["summary"],
                "additionalProperties": False,
            },
        },
    },
]

TOOL_NAMES = ("bash", "submit")


class ToolCallError(Exception):
    """A malformed tool call; the message is sent back to the model as the tool's answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BashCall:
    command: str


@dataclass(frozen=True)
class SubmitCall:
    summary: str


def parse_tool_call(call: ToolCall) -> BashCall | SubmitCall:
    """Validate one tool call from the model; raises ToolCallError with advice for the model."""
    if call.name not in TOOL_NAMES:
        raise ToolCallError(f"unknown tool {call.name!r}; the tools are: bash, submit")
    arguments = _arguments(call)
    if call.name == "bash":
        command = _string_argument(arguments, "bash", "command")
        if not command.strip():
            raise ToolCallError("bash: `command` is empty; send the shell command to run")
        return BashCall(command=command)
    return SubmitCall(summary=_string_argument(arguments, "submit", "summary"))


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments)
    except (json.JSONDecodeError, RecursionError):
        raise ToolCallError(
            f"{call.name}: the arguments are not valid JSON; send a JSON object like "
            + _example(call.name)
        ) from None
    if not isinstance(arguments, dict):
        raise ToolCallError(f"{call.name}: the arguments must be a JSON object like {_example(call.name)}")
    return arguments


def _string_argument(arguments: dict[str, Any], tool: str, key: str) -> str:
    if key not in arguments:
        raise ToolCallError(f"{tool}: missing required argument `{key}`; send {_example(tool)}")
    value = arguments[key]
    if not isinstance(value, str):
        raise ToolCallError(f"{tool}: `{key}` must be a string, got {type(value).__name__}")
    return value


def _example(tool: str) -> str:
    return '{"command": "ls"}' if tool == "bash" else '{"summary": "what was done"}'


# ESC-introduced sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC
# strings (ESC P/X/^/_ ... ST), and two-byte escapes (ESC + one char). Also the 8-bit CSI.
# An unterminated string stops at the line's end so it cannot swallow the rest of the output.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 controls except \t and \n, DEL, C1 controls, and bidi overrides that can disguise text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """Remove terminal escapes and control characters, keeping newlines and tabs.

    A carriage return inside a line keeps only what a terminal would show last (progress
    bars collapse to their final state).
    """
    text = _ESCAPES.sub("", text)
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(_last_overwrite(line) for line in text.split("\n"))
    return _CONTROLS.sub("", text)


def _last_overwrite(line: str) -> str:
    pieces = [piece for piece in line.split("\r") if piece]
    return pieces[-1] if pieces else ""


def format_observation(
    exit_code: int | None,
    output: bytes,
    timed_out: bool,
    truncated: bool,
    max_chars: int = 10000,
    *,
    timeout_s: float | None = None,
) -> str:
    """The text the model sees after a bash call: a status line, then the cleaned output."""
    text = strip_control(output.decode("utf-8", errors="replace"))
    text = shorten(text, max_chars)
    lines = [_status_line(exit_code, timed_out, timeout_s)]
    if truncated:
        lines.append("[output was longer than the sandbox keeps; only its start was captured]")
    lines.append(text if text else "(no output)")
    return "\n".join(lines)


def _status_line(exit_code: int | None, timed_out: bool, timeout_s: float | None) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g} s, killed" if timeout_s is not None else "timed out, killed"
    if exit_code is None:
        return "exit code: unknown"
    if exit_code < 0:  # ended by a signal; SIGKILL here is usually the memory limit
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        hint = " (out of memory?)" if -exit_code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    if 128 < exit_code < 160:  # the shell's report of a command ended by a signal
        try:
            name = signal.Signals(exit_code - 128).name
        except ValueError:
            return f"exit code: {exit_code}"
        hint = ", out of memory?" if exit_code - 128 == signal.SIGKILL else ""
        return f"exit code: {exit_code} (killed by {name}{hint})"
    return f"exit code: {exit_code}"


def shorten(text: str, max_chars: int) -> str:
    """Keep the head and the tail of a long text, marking how much was cut from the middle."""
    if max_chars < 0:
        raise ValueError("max_chars must not be negative")
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    cut = len(text) - max_chars
    return text[:head] + f"\n[... {cut} characters cut ...]\n" + (text[-tail:] if tail else "")
