"""`start` without --task takes the best discovered tasks, claims them, and a later run skips them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator.tasks.sample import make_shop_repo
from orchestrator.testing import ScriptedModelServer, Submit
from tests.e2e.conftest import run_cli

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def test_start_without_tasks_runs_discovered_work_and_claims_it(tmp_path: Path, agent_image: str) -> None:
    shop = make_shop_repo(tmp_path)
    listed = run_cli(["tasks", "--repo", str(shop), "--json", "--no-coverage"])
    assert listed.returncode == 0, listed.stderr
    candidates = json.loads(listed.stdout)
    assert {"feature", "docs"} <= {c["kind"] for c in candidates}
    policy = tmp_path / "two.toml"
    policy.write_text("agents = 2\n")
    with ScriptedModelServer([Submit("Looked; nothing to change yet.")]) as server:
        first = run_cli(["start", "--repo", str(shop), "--model", "scripted", "--price", "1/1", "--no-approval",
                         "--policy", str(policy), "--output", "json"], base_url=server.base_url, timeout=300)
        prompts = [r["messages"][1]["content"] for r in server.requests]
    assert first.returncode == 1, first.stderr  # agents submitted without changes
    runs = sorted((shop / ".fresh" / "runs").iterdir())
    report = json.loads((runs[-1] / "report.json").read_text())
    titles = [a["task"] for a in report["agents"]]
    assert len(titles) == 2 and all(a["status"] == "no_changes" for a in report["agents"])
    assert any(p.startswith("Task (feature)") or p.startswith("Task (docs)") or p.startswith("Task (tests)")
               for p in prompts)
    with sqlite3.connect(shop / ".fresh" / "state.db") as db:
        claimed = {row[0] for row in db.execute("SELECT agent_id FROM claims WHERE run_id=?", (report["run_id"],))}
    assert claimed == {"a1", "a2"}
    again = run_cli(["tasks", "--repo", str(shop), "--json", "--no-coverage"])
    remaining = {c["title"] for c in json.loads(again.stdout)}
    assert not (remaining & set(titles))  # claimed work is not handed out twice
