"""replay: record real SDK traffic against the scripted server, then answer from the file."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError, ModelError
from orchestrator.model import Completion, OpenAIModel, Usage
from orchestrator.replay import (
    RecordingModel, ReplayModel, is_replay, load_model_spec, recording_path, resolve_recording,
)
from orchestrator.testing import Bash, Fail, Script, ScriptedModelServer, Submit
from orchestrator.tools import TOOL_SCHEMAS

KEY = "sk-replay"
SCRIPT: Script = {"Task: A": [Bash("ls"), Bash("cat x"), Submit("did A")], "Task: B": [Bash("pwd"), Submit("did B")]}


def _conversation(task: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be good"}, {"role": "user", "content": f"Task: {task}"}]


def _drive(model: Any, task: str) -> list[Completion]:
    """Run a conversation to its submit, like the agent loop does."""
    messages, answers = _conversation(task), []
    while True:
        answer = model.complete(messages, TOOL_SCHEMAS)
        answers.append(answer)
        messages.append(answer.assistant_message())
        call = answer.tool_calls[0]
        if call.name == "submit":
            return answers
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"output of {call.arguments}"})


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, dict[str, list[Completion]]]:
    path = tmp_path / "runs" / "r1" / "model.jsonl"
    with ScriptedModelServer(SCRIPT, expected_key=KEY, completion_tokens=7) as server:
        inner = OpenAIModel("scripted", api_key=KEY, base_url=server.base_url, max_output_tokens=321)
        model = RecordingModel(inner, path, meta={"price": [1.0, 2.0]})
        answers = {"A": _drive(model, "A"), "B": _drive(model, "B")}
    return path, answers


def test_recording_is_one_json_line_per_call_after_a_header(recorded: tuple[Path, Any]) -> None:
    path, _ = recorded
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["kind"] == "meta" and lines[0]["model"] == "scripted" and lines[0]["max_output_tokens"] == 321
    calls = lines[1:]
    assert [(c["conversation"], c["turn"]) for c in calls] == [
        ("Task: A", 0), ("Task: A", 1), ("Task: A", 2), ("Task: B", 0), ("Task: B", 1)]
    assert calls[0]["completion"]["tool_calls"][0]["name"] == "bash"
    assert calls[0]["completion"]["usage"]["completion_tokens"] == 7
    assert len(calls[0]["request_sha256"]) == 64


def test_replay_gives_the_same_answers_and_usage_in_any_order(recorded: tuple[Path, Any]) -> None:
    path, answers = recorded
    replay = ReplayModel(path)
    assert replay.name == "scripted" and replay.max_output_tokens == 321
    assert replay.recorded_price == (1.0, 2.0)
    assert _drive(replay, "B") == answers["B"]  # the other conversation first
    assert _drive(replay, "A") == answers["A"]
    assert _drive(replay, "A") == answers["A"]  # and again: replay is stateless
    assert replay.diverged == []
    assert ReplayModel(path, name="other").name == "other"


def test_replayed_usage_means_replayed_cost(recorded: tuple[Path, Any]) -> None:
    path, answers = recorded

    def tokens(completions: list[Completion]) -> list[Usage]:
        return [c.usage for c in completions]

    assert tokens(_drive(ReplayModel(path), "A")) == tokens(answers["A"])


def test_divergent_requests_are_noted_but_answered(recorded: tuple[Path, Any]) -> None:
    path, answers = recorded
    replay = ReplayModel(path)
    messages = _conversation("A") + [answers["A"][0].assistant_message(),
                                     {"role": "tool", "tool_call_id": "call_0", "content": "different output"}]
    assert replay.complete(messages, TOOL_SCHEMAS) == answers["A"][1]
    assert replay.diverged == [("Task: A", 1)]


def test_a_reworded_prompt_around_the_same_task_still_replays(recorded: tuple[Path, Any]) -> None:
    path, answers = recorded
    messages = [{"role": "user", "content": "Task: A\n\nA new paragraph of instructions."}]
    assert ReplayModel(path).complete(messages, TOOL_SCHEMAS) == answers["A"][0]


def test_an_unrecorded_request_is_a_model_error(recorded: tuple[Path, Any]) -> None:
    path, _ = recorded
    with pytest.raises(ModelError) as caught:
        ReplayModel(path).complete(_conversation("C"), TOOL_SCHEMAS)
    assert "no answer for turn 0" in caught.value.message and "same tasks" in caught.value.hint
    messages = _conversation("B") + [{"role": "assistant", "content": "x"}] * 5
    with pytest.raises(ModelError, match="turn 5"):
        ReplayModel(path).complete(messages, TOOL_SCHEMAS)


def test_model_errors_are_recorded_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "model.jsonl"
    with ScriptedModelServer([Fail(400, {"error": {"message": "nope"}})]) as server:
        model = RecordingModel(OpenAIModel("scripted", api_key=KEY, base_url=server.base_url, max_retries=0), path)
        with pytest.raises(ModelError) as recorded_error:
            model.complete(_conversation("A"), TOOL_SCHEMAS)
    with pytest.raises(ModelError) as replayed_error:
        ReplayModel(path).complete(_conversation("A"), TOOL_SCHEMAS)
    assert replayed_error.value.message == recorded_error.value.message
    assert replayed_error.value.hint == recorded_error.value.hint


class _Echo:
    name = "echo"
    max_output_tokens = 64

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        return Completion("x" * 5000, (), Usage(len(messages), 1), "stop")


def test_recording_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "model.jsonl"
    model = RecordingModel(_Echo(), path)

    def work(n: int) -> None:
        for _ in range(20):
            model.complete(_conversation(f"T{n}"), [])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 1 + 8 * 20 and sum(1 for line in lines if line["kind"] == "meta") == 1


def test_the_inner_preflight_is_passed_through(tmp_path: Path) -> None:
    class _Checked(_Echo):
        checked = 0

        def preflight(self) -> None:
            self.checked += 1

    inner = _Checked()
    RecordingModel(inner, tmp_path / "model.jsonl").preflight()
    RecordingModel(_Echo(), tmp_path / "model.jsonl").preflight()  # none: nothing to do
    assert inner.checked == 1


def test_no_file_until_the_first_call(tmp_path: Path) -> None:
    RecordingModel(_Echo(), tmp_path / "sub" / "model.jsonl")
    assert not (tmp_path / "sub").exists()


def test_a_damaged_recording_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "model.jsonl"
    path.write_text('{"v": 1, "kind": "call", "conversation": "x"}\n')
    with pytest.raises(ConfigError, match="model.jsonl:1"):
        ReplayModel(path)
    with pytest.raises(ConfigError, match="cannot read"):
        ReplayModel(tmp_path / "missing.jsonl")


def test_model_specs_resolve_run_ids_paths_and_latest(recorded: tuple[Path, Any], tmp_path: Path) -> None:
    path, _ = recorded
    state_dir = tmp_path
    assert recording_path(state_dir, "r1") == path
    assert resolve_recording("r1", state_dir) == path
    assert resolve_recording(str(path), state_dir) == path
    assert resolve_recording(str(path.parent), state_dir) == path
    assert resolve_recording("latest", state_dir) == path
    model = load_model_spec("replay:r1", state_dir=state_dir)
    assert isinstance(model, ReplayModel) and model.name == "scripted"
    with pytest.raises(ConfigError, match="no recording for 'r2'"):
        load_model_spec("replay:r2", state_dir=state_dir)
    with pytest.raises(ConfigError, match="needs a run"):
        load_model_spec("replay:", state_dir=state_dir)
    openai_model = load_model_spec("gpt-x", state_dir=state_dir, api_key="k", base_url="http://127.0.0.1:9/v1",
                                   max_output_tokens=99)
    assert isinstance(openai_model, OpenAIModel) and openai_model.max_output_tokens == 99
    assert is_replay("replay:r1") and not is_replay("gpt-x") and not is_replay(None)
