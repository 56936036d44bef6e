"""Ranking, the untested-code judgement (canned trace, no Docker), prompts and the `tasks` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config import TaskSpec
from orchestrator.tasks.claims import claim
from orchestrator.tasks.codebase import Codebase
from orchestrator.tasks.collect import Sources, collect_tasks
from orchestrator.tasks.model import Task
from orchestrator.tasks.prompts import task_prompt
from orchestrator.tasks.rank import rank
from orchestrator.sample import run_git
from orchestrator.tasks.sample import make_shop_repo
from orchestrator.tasks.untested import TestRun, traced_command, untested_tasks

STATIC = Sources(coverage=False)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_shop_repo(tmp_path)


def test_rank_dedupes_by_key_and_orders_by_score() -> None:
    tasks = [Task("a", "A", score=10), Task("b", "B", score=30), Task("a", "A2", score=20)]
    assert [(t.key, t.title) for t in rank(tasks)] == [("b", "B"), ("a", "A2")]
    assert len(rank(tasks, limit=1)) == 1


def test_untested_tasks_from_a_trace(shop: Path) -> None:
    code = Codebase(shop)
    everything = {m.path: set(range(1, 200)) for m in code.modules.values()}
    assert untested_tasks(code, TestRun(everything, 0, "")) == []
    del everything["shop/pricing.py"]
    (task,) = untested_tasks(code, TestRun(everything, 1, ""))
    assert task.key == "untested:shop/pricing.py" and task.kind == "tests"
    assert "discount: 0 of 3" in task.evidence[0] and "exited with 1" in task.evidence[1]


def test_traced_command_keeps_the_project_runner() -> None:
    assert traced_command("python3 -m pytest -q tests").endswith("-m pytest -q tests -p no:cacheprovider")
    assert traced_command("python -m unittest discover").endswith("-m unittest discover")
    assert "-m pytest -q" in traced_command("make test")


def test_collect_skips_claimed_and_branch_covered_tasks(shop: Path, tmp_path: Path) -> None:
    keys = [t.key for t in collect_tasks(shop, STATIC)]
    assert keys == ["drift:stale-command:remove", "unhooked:shop.inventory.export_csv",
                    "drift:undocumented:report", "drift:options:add"]
    claim(shop / ".fresh" / "state.db", "r1", "drift:stale-command:remove", "a1")
    run_git("push", "--quiet", "origin", "HEAD:refs/heads/fresh/r1/a2-document-the-report-command", cwd=shop)
    assert [t.key for t in collect_tasks(shop, STATIC)] == [
        "unhooked:shop.inventory.export_csv", "drift:options:add"]
    tasks_file = tmp_path / "tasks.toml"
    tasks_file.write_text('[[task]]\ntitle = "Speed up list"\npriority = 1\n')
    first = collect_tasks(shop, Sources(tasks_file=tasks_file, discovery=False, coverage=False))
    assert [t.title for t in first] == ["Speed up list"]


def test_prompts_differ_by_kind_and_ask_for_a_plan_first() -> None:
    feature = task_prompt(Task("k", "Expose export_csv", kind="feature", evidence=("unreached",)))
    tests = task_prompt(TaskSpec("Write tests for pricing", "details", "tests"))
    assert "command line" in feature and "unreached" in feature
    assert "Write tests" in tests and "details" in tests
    assert all("plan" in p for p in (feature, tests))


def test_tasks_command_lists_json_and_reports_errors(shop: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["tasks", "--repo", str(shop), "--no-coverage", "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert [t["kind"] for t in json.loads(result.output)] == ["docs", "feature"]
    table = runner.invoke(app, ["tasks", "--repo", str(shop), "--no-coverage"])
    assert table.exit_code == 0 and "export_csv" in table.output
    bad = runner.invoke(app, ["tasks", "--repo", str(shop), "--tasks-file", str(shop / "none.toml")])
    assert bad.exit_code == 2 and "not found" in bad.output
