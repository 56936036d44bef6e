"""The demo end to end: real Docker and git, the model replayed from the bundled recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator import demo
from orchestrator.errors import PreflightError
from orchestrator.replay import ReplayModel
from tests.e2e.conftest import remote_branches

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def _recorded_cost(path: Path) -> float:
    model = ReplayModel(path)
    assert model.recorded_price is not None
    price_in, price_out = model.recorded_price
    calls = [json.loads(line) for line in path.read_text().splitlines()]
    usages = [c["completion"]["usage"] for c in calls if c["kind"] == "call"]
    return float(sum(u["prompt_tokens"] * price_in + u["completion_tokens"] * price_out for u in usages)) / 1e6


def _report(workdir: Path) -> dict[str, Any]:
    [report] = (workdir / "app" / ".fresh" / "runs").glob("*/report.json")
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def test_demo_pushes_a_tested_branch_at_the_recorded_cost(agent_image: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run_demo(tmp_path, output="quiet") == 0
    report = _report(tmp_path)
    [agent] = report["agents"]
    assert agent["status"] == "pushed" and agent["tests_passed"] and agent["tests"]["tests"] == 4
    assert agent["branch"] in remote_branches(tmp_path / "remote.git")
    assert report["totals"]["spent_usd"] == pytest.approx(_recorded_cost(demo.BUNDLED_RECORDING), abs=1e-8)
    printed = capsys.readouterr().err
    assert "report.md" in printed and agent["branch"] in printed


def test_demo_needs_no_api_key(agent_image: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FRESH_", "GITHUB_", "GH_"))}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.demo", "--workdir", str(tmp_path), "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pushed:" in proc.stderr
    assert _report(tmp_path)["totals"]["pushed"] == 1


def test_a_second_demo_in_the_same_workdir_is_refused(agent_image: str, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(PreflightError, match="already holds a demo"):
        demo.run_demo(tmp_path, output="quiet")


def test_the_recording_is_reproducible(agent_image: str, tmp_path: Path) -> None:
    fresh = demo.record(tmp_path / "model.jsonl", output="quiet")

    def tool_calls(path: Path) -> list[Any]:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [(c["conversation"], c["turn"], c["completion"]["tool_calls"]) for c in lines if c["kind"] == "call"]

    assert tool_calls(fresh) == tool_calls(demo.BUNDLED_RECORDING)
