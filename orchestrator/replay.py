"""Record a run's model traffic, and replay it without a model.

`RecordingModel` wraps any Model and appends one JSON line per call to `model.jsonl`;
`ReplayModel` answers from such a file. A call is keyed, like `ScriptedModelServer` keys its
script, by its conversation (the first user message, which is the task prompt) and its turn
(the number of assistant messages already in the request), so several agents of one run
replay independently and in any order. The recorded usage is returned unchanged: at the same
prices a replay costs exactly what the recorded run cost.

A line is one of:
  {"v": 1, "kind": "meta", "model": ..., "max_output_tokens": ..., ...caller's metadata}
  {"v": 1, "kind": "call", "conversation": ..., "turn": N, "request_sha256": ...,
   "completion": {"content", "tool_calls": [{"id", "name", "arguments"}], "usage", "finish_reason"}}
  {"v": 1, "kind": "call", ..., "error": {"message", "hint"}}      a call that raised ModelError
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, ModelError
from orchestrator.model import Completion, Model, ToolCall, Usage

FORMAT_VERSION = 1
RECORDING_NAME = "model.jsonl"
REPLAY_PREFIX = "replay:"


def first_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the first user message: it names the conversation."""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def turn_index(messages: list[dict[str, Any]]) -> int:
    """How many answers the model already gave in this conversation."""
    return sum(1 for message in messages if message.get("role") == "assistant")


def request_hash(messages: list[dict[str, Any]]) -> str:
    """A fingerprint of the request, to tell a replay that diverged from its recording."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()


def completion_to_json(completion: Completion) -> dict[str, Any]:
    return {
        "content": completion.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in completion.tool_calls],
        "usage": {"prompt_tokens": completion.usage.prompt_tokens,
                  "completion_tokens": completion.usage.completion_tokens},
        "finish_reason": completion.finish_reason,
    }


def completion_from_json(data: Mapping[str, Any]) -> Completion:
    usage = data["usage"]
    return Completion(
        content=data.get("content"),
        tool_calls=tuple(ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"])) for c in data["tool_calls"]),
        usage=Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])),
        finish_reason=data.get("finish_reason"),
    )


class RecordingModel:
    """A Model that passes every call to `inner` and appends it to `path` (thread-safe)."""

    def __init__(self, inner: Model, path: Path, *, meta: Mapping[str, Any] | None = None) -> None:
        self.inner = inner
        self.path = path
        self.name = inner.name
        self.max_output_tokens = inner.max_output_tokens
        self._meta = dict(meta or {})
        self._lock = threading.Lock()
        self._started = False

    def preflight(self) -> None:
        """The inner model's start-up check, when it has one (the run calls it before starting)."""
        check = getattr(self.inner, "preflight", None)
        if callable(check):
            check()

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """Call the inner model; record the answer, or the ModelError it raised."""
        entry: dict[str, Any] = {
            "v": FORMAT_VERSION, "kind": "call", "conversation": first_user_text(messages),
            "turn": turn_index(messages), "request_sha256": request_hash(messages),
        }
        try:
            completion = self.inner.complete(messages, tools)
        except ModelError as exc:
            self._append({**entry, "error": {"message": exc.message, "hint": exc.hint}})
            raise
        self._append({**entry, "completion": completion_to_json(completion)})
        return completion

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            lines = []
            if not self._started:  # the file appears with the first call, not at construction
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lines.append({"v": FORMAT_VERSION, "kind": "meta", **self._meta, "model": self.name,
                              "max_output_tokens": self.max_output_tokens})
                self._started = True
            lines.append(entry)
            with self.path.open("a", encoding="utf-8") as file:
                file.writelines(json.dumps(line, sort_keys=True) + "\n" for line in lines)


class ReplayModel:
    """A Model that answers from a recording, deterministically, with the recorded usage."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.meta: dict[str, Any] = {}
        self._calls: dict[tuple[str, int], dict[str, Any]] = {}
        self._load(path)
        self.name = name or str(self.meta.get("model") or "replay")
        self.max_output_tokens = int(self.meta.get("max_output_tokens") or 4096)
        self.diverged: list[tuple[str, int]] = []  # calls whose request differs from the recorded one
        self._lock = threading.Lock()

    @property
    def recorded_price(self) -> tuple[float, float] | None:
        """USD per million input/output tokens the recording was made at, if it says."""
        price = self.meta.get("price")
        if isinstance(price, list) and len(price) == 2:
            return float(price[0]), float(price[1])
        return None

    def _load(self, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the recording {path}: {exc.strerror}",
                              hint="pass replay:RUN_ID of a recorded run, or replay:PATH to a model.jsonl") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry.get("kind") == "meta":
                    self.meta = self.meta or entry  # appended-to files keep their first header
                elif entry.get("kind") == "call":
                    key = (str(entry["conversation"]), int(entry["turn"]))
                    if "completion" in entry:
                        completion_from_json(entry["completion"])  # fail now, not mid-run
                    self._calls.setdefault(key, entry)  # the first answer wins, like the original run
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path}:{number} is not a model recording line ({exc})",
                                  hint="the file is damaged or was not written by fresh-sandbox") from exc

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """The recorded answer for this conversation and turn; ModelError if none was recorded."""
        conversation, turn = first_user_text(messages), turn_index(messages)
        entry = self._calls.get((conversation, turn)) or self._calls.get((self._same_task(conversation), turn))
        if entry is None:
            raise ModelError(
                f"the recording {self.path} has no answer for turn {turn} of task {conversation[:80]!r}",
                hint="replay the same tasks as the recorded run; a replay cannot answer new questions",
            )
        if entry.get("request_sha256") != request_hash(messages):
            with self._lock:
                self.diverged.append((conversation, turn))
        if "error" in entry:
            error = entry["error"]
            raise ModelError(str(error.get("message", "recorded model error")), hint=str(error.get("hint", "")))
        return completion_from_json(entry["completion"])


    def _same_task(self, conversation: str) -> str:
        """The one recorded conversation whose first line (the task's title) matches, else ''.

        Lets a recording outlive a rewording of the prompt around the task."""
        title = task_title(conversation)
        matches = {key for key, _ in self._calls if task_title(key) == title}
        return matches.pop() if len(matches) == 1 else ""


_TASK_LINE = re.compile(r"^Task(?: \([^)]*\))?: (.*)$")


def task_title(conversation: str) -> str:
    """The task's title from a task prompt's first line ('Task: T' or 'Task (kind): T')."""
    head = conversation.split("\n", 1)[0]
    found = _TASK_LINE.match(head)
    return found.group(1) if found else head


def recording_path(state_dir: Path, run_id: str) -> Path:
    """Where a run's model traffic is recorded."""
    return state_dir / "runs" / run_id / RECORDING_NAME


def resolve_recording(target: str, state_dir: Path) -> Path:
    """A recording from a run id, `latest`, or a path to a model.jsonl (or a run directory)."""
    if target == "latest":
        runs = sorted(p.parent for p in (state_dir / "runs").glob(f"*/{RECORDING_NAME}"))
        if not runs:
            raise ConfigError(f"no recorded run under {state_dir}", hint="run `fresh-sandbox start` first")
        return runs[-1] / RECORDING_NAME
    path = Path(target).expanduser()
    if path.is_dir():
        path = path / RECORDING_NAME
    if path.is_file():
        return path
    by_id = recording_path(state_dir, target)
    if by_id.is_file():
        return by_id
    raise ConfigError(f"no recording for {target!r} (looked for {by_id})",
                      hint="`fresh-sandbox status` lists runs; or pass replay:PATH/TO/model.jsonl")


def load_model_spec(
    spec: str, *, state_dir: Path, api_key: str = "", base_url: str | None = None,
    max_output_tokens: int = 4096, stream: bool = False,
) -> Model:
    """`replay:<run-id|latest|path>` -> a ReplayModel; any other name -> an OpenAIModel."""
    if spec.startswith(REPLAY_PREFIX):
        target = spec[len(REPLAY_PREFIX):].strip()
        if not target:
            raise ConfigError("--model replay: needs a run", hint="use replay:RUN_ID, replay:latest or replay:PATH")
        return ReplayModel(resolve_recording(target, state_dir))
    from orchestrator.model import OpenAIModel

    return OpenAIModel(spec, api_key=api_key, base_url=base_url, max_output_tokens=max_output_tokens,
                       stream=stream)


def is_replay(spec: str | None) -> bool:
    return bool(spec) and str(spec).startswith(REPLAY_PREFIX)
