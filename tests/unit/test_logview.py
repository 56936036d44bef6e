"""Reading, filtering, rendering and following a run's events file."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.logview import EventFilter, EventTail, follow, format_event, read_events

EVENTS: list[dict[str, Any]] = [
    {"run": "r1", "event": "run_started", "level": "info", "timestamp": "2026-01-01T10:00:00Z"},
    {"run": "r1", "agent": "a1", "event": "tool_call", "command": "ls", "level": "info",
     "timestamp": "2026-01-01T10:00:01Z"},
    {"run": "r1", "agent": "a2", "event": "tool_call", "command": "pwd", "level": "info",
     "timestamp": "2026-01-01T10:00:02Z"},
    {"run": "r1", "agent": "a1", "event": "tool_call_rejected", "error": "bad", "level": "warning",
     "timestamp": "2026-01-01T10:00:03Z"},
    {"run": "r1", "agent": "a2", "event": "agent_error", "error": "boom", "level": "error",
     "timestamp": "2026-01-01T10:00:04Z"},
]


def write(path: Path, events: list[dict[str, Any]], tail: str = "") -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in events) + tail)


def test_filters_combine_agent_event_and_minimum_level() -> None:
    assert [e["command"] for e in EventFilter(agent="a1", event="tool_call").apply(EVENTS)] == ["ls"]
    assert [e["event"] for e in EventFilter(level="warning").apply(EVENTS)] == ["tool_call_rejected", "agent_error"]
    assert [e["event"] for e in EventFilter(agent="a2", level="error").apply(EVENTS)] == ["agent_error"]
    assert len(list(EventFilter().apply(EVENTS))) == len(EVENTS)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        EventFilter(level="loud")


def test_json_rendering_is_one_parseable_line_and_pretty_is_readable() -> None:
    line = format_event(EVENTS[1], as_json=True)
    assert "\n" not in line and json.loads(line) == EVENTS[1]
    pretty = format_event(EVENTS[3], as_json=False)
    assert pretty.startswith("10:00:03 a1") and "[warning] tool_call_rejected" in pretty and "error=bad" in pretty


def test_pretty_rendering_strips_terminal_escapes() -> None:
    event = {"agent": "a1", "event": "tool_call", "command": "printf '\x1b]0;pwned\x07\x1b[2J'", "level": "info"}
    assert "\x1b" not in format_event(event, as_json=False)


def test_tail_keeps_a_half_written_line_and_skips_damaged_ones(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet
    write(path, EVENTS[:2], tail='not json\n{"event": "tool')
    assert [e["event"] for e in tail.read_new()] == ["run_started", "tool_call"]
    with path.open("a") as handle:
        handle.write('_call", "agent": "a3"}\n')
    assert tail.read_new() == [{"event": "tool_call", "agent": "a3"}]
    assert tail.read_new() == []
    assert len(read_events(path)) == 3


def test_follow_stops_at_run_finished(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, EVENTS[:1])
    steps = iter([EVENTS[1:3], [{"event": "run_finished", "level": "info"}], EVENTS[3:]])

    def sleep(_s: float) -> None:
        write(path, next(steps, []))

    seen = [e["event"] for e in follow(path, lambda: False, sleep=sleep)]
    assert seen == ["run_started", "tool_call", "tool_call", "run_finished"]


def test_follow_ends_after_a_quiet_grace_when_the_run_died(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, EVENTS[:2])
    seen = list(follow(path, lambda: True, poll_s=0.01, grace_s=0.05))
    assert len(seen) == 2


def test_follow_sees_events_written_by_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    done = threading.Event()

    def writer() -> None:
        for event in EVENTS:
            write(path, [event])
        done.set()

    threading.Thread(target=writer).start()
    seen = list(follow(path, done.is_set, poll_s=0.01, grace_s=0.1))
    assert seen == EVENTS
