"""The dashboard rendered to a recorded console, and its plain-line fallback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.dashboard import duration, follow, plain_changes, render, time_left

NOW = 1_800_000_000.0


def run_row(**extra: Any) -> dict[str, Any]:
    row = {"run_id": "20260101-000000-abcd", "status": "running", "budget_usd": 2.0, "spent_usd": 0.0,
           "started_at": NOW - 125, "ended_at": None, "pid": 1,
           "info": {"model": "gpt-test", "hours": 1.0, "base_commit": "abc"}}
    return row | extra


def agent_row(agent_id: str, state: str, **extra: Any) -> dict[str, Any]:
    row = {"agent_id": agent_id, "state": state, "task": f"task of {agent_id}", "steps": 3, "cost_usd": 0.25,
           "started_at": NOW - 100, "updated_at": NOW - 40}
    return row | extra


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_renders_agents_budget_time_left_and_approvals() -> None:
    agents = [agent_row("a1", "implementation"), agent_row("a2", "awaiting_approval", cost_usd=0.5),
              agent_row("a3", "pushed", steps=7)]
    events = [{"timestamp": "2026-01-01T10:00:00Z", "agent": "a1", "event": "tool_call", "command": "ls -la",
               "level": "info"}]
    text = text_of(render(run_row(), agents, events, NOW))
    assert "run 20260101-000000-abcd" in text and "running" in text and "model gpt-test" in text
    assert "elapsed 2m05s" in text and "time left 57m55s" in text
    assert "$1.0000 of $2.00 (50%)" in text  # the agents' sum while the run has not settled
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│ a")}
    assert "implementation" in lines["a1"] and "task of a1" in lines["a1"] and "1m40s" in lines["a1"]
    assert "pushed" in lines["a3"] and " 7 " in lines["a3"] and "1m00s" in lines["a3"]  # stopped at its last update
    assert "awaiting approval: a2" in text and "fresh-sandbox approve a2" in text
    assert "recent events" in text and "tool_call command=ls -la" in text


def test_finished_run_shows_the_settled_spend_and_no_time_left() -> None:
    run = run_row(status="finished", spent_usd=1.5, ended_at=NOW - 5)
    text = text_of(render(run, [agent_row("a1", "pushed")], [], NOW))
    assert "finished" in text and "$1.5000 of $2.00 (75%)" in text
    assert "time left" not in text and "awaiting approval" not in text and "recent events" not in text
    assert "elapsed 2m00s" in text


def test_agent_text_cannot_drive_the_terminal() -> None:
    agents = [agent_row("a1", "analysis", task="fix\x1b]0;owned\x07 it\x1b[2J")]
    events = [{"agent": "a1", "event": "plan", "plan": "\x1b[31mred", "level": "info"}]
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render(run_row(), agents, events, NOW))
    shown = console.export_text(styles=True)
    assert "\x1b[2J" not in shown and "\x1b]0;" not in shown and "\x1b[31m" not in shown


def test_time_left_comes_from_a_deadline_or_hours() -> None:
    assert time_left(run_row(info={"deadline": NOW + 90}), NOW) == 90
    assert time_left(run_row(info={}), NOW) is None
    assert time_left(run_row(status="finished"), NOW) is None
    assert duration(59) == "59s" and duration(3700) == "1h01m"


def test_plain_lines_only_on_change() -> None:
    seen: dict[str, tuple[str, int]] = {}
    first = plain_changes(seen, [agent_row("a1", "analysis"), agent_row("a2", "starting")], NOW)
    assert [line.split()[:2] for line in first] == [["a1", "analysis"], ["a2", "starting"]]
    assert plain_changes(seen, [agent_row("a1", "analysis"), agent_row("a2", "starting")], NOW) == []
    again = plain_changes(seen, [agent_row("a1", "analysis", steps=4), agent_row("a2", "starting")], NOW)
    assert len(again) == 1 and again[0].startswith("a1 analysis step=4")


def test_follow_without_a_terminal_prints_plain_lines_until_the_run_ends(tmp_path: Path) -> None:
    states = iter([
        (run_row(), [agent_row("a1", "analysis")]),
        (run_row(), [agent_row("a1", "testing")]),
        (run_row(status="finished", spent_usd=0.25), [agent_row("a1", "pushed")]),
    ])
    console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
    done = threading.Event()

    def run() -> None:
        follow(lambda: next(states), tmp_path / "events.jsonl", console=console, refresh_s=0.01)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5)
    lines = console.export_text().splitlines()
    assert [line.split()[1] for line in lines[:3]] == ["analysis", "testing", "pushed"]
    assert lines[-1].startswith("run 20260101-000000-abcd finished: spent $0.2500 of $2.00")


def test_follow_on_a_terminal_redraws_until_the_run_ends(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"event": "run_started", "level": "info"}\n')
    states = iter([(run_row(), [agent_row("a1", "analysis")])] * 2 +
                  [(run_row(status="finished"), [agent_row("a1", "pushed")])])
    console = Console(record=True, width=120, force_terminal=True, file=open("/dev/null", "w"))  # noqa: SIM115
    follow(lambda: next(states), tmp_path / "events.jsonl", console=console, refresh_s=0.01)
    text = console.export_text()
    assert "pushed" in text and "run_started" in text
