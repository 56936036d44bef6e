from __future__ import annotations

import io
import json
from pathlib import Path

from orchestrator import events
from orchestrator.store import Store


def test_store_round_trip_and_commands(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.start_run("r1", "/repo", 2.0, 123, {"model": "m"})
    store.upsert_agent("r1", {"agent_id": "a1", "task": "t", "branch": "b", "state": "analysis", "started_at": 1.0})
    store.upsert_agent("r1", {"agent_id": "a1", "task": "t", "branch": "b", "state": "pushed", "started_at": 1.0})
    other = Store(tmp_path / "state.db")  # a second terminal
    assert other.agents("r1")[0]["state"] == "pushed"
    other.send("r1", "approve", "a1")
    pending = store.pending("r1")
    assert [(c.agent_id, c.command) for c in pending] == [("a1", "approve")]
    store.mark_done(pending[0].id)
    assert store.pending("r1") == []
    assert other.find_agent("a1")["run_id"] == "r1"  # type: ignore[index]
    assert (tmp_path / ".gitignore").read_text() == "*\n"  # the state dir never shows in `git status`


def test_events_are_json_lines_with_secrets_redacted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    console = io.StringIO()
    events.configure(path, secrets=["sk-secret-123456"], console="pretty", stream=console)
    events.get_logger(run="r1").info("tool_call", output="key is sk-secret-123456 \x1b[31mred\x1b[0m")
    events.shutdown()
    line = json.loads(path.read_text().splitlines()[0])
    assert line["event"] == "tool_call" and line["run"] == "r1" and "timestamp" in line
    assert "sk-secret-123456" not in path.read_text() and "***" in line["output"]
    assert "\x1b" not in console.getvalue() and "sk-secret" not in console.getvalue()
