"""`fresh-sandbox start` end to end: real Docker, real git, the real openai SDK over loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.demo import DEMO_SCRIPT
from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, Fail, ScriptedModelServer, Submit
from tests.e2e.conftest import API_KEY, remote_branches

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

ADD_FEATURE = DEMO_SCRIPT  # read the code, add the low-stock command with tests, submit


def tool_outputs(server: ScriptedModelServer) -> str:
    """Everything the model was shown, as one string."""
    return json.dumps(server.requests)


def test_passing_tests_push_the_branch(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer(ADD_FEATURE, expected_key=API_KEY) as server:
        run = start(server.base_url, "--stream")
    assert run.exit_code == 0, run.stderr
    report = run.report()
    agent = report["agents"][0]
    assert agent["status"] == "pushed" and agent["pushed"] and agent["tests_passed"]
    assert agent["tests"]["tests"] == 4 and agent["tests"]["failures"] == 0
    assert agent["branch"] in remote_branches(sample_repo.remote)
    shown = subprocess.run(["git", "show", f"{agent['branch']}:tests/test_cli.py"], cwd=sample_repo.remote,
                           capture_output=True, text=True, check=True).stdout
    assert "test_low_stock_command" in shown
    # Spend equals the sum of usage times price ($1 per million tokens both ways).
    calls = [e for e in run.events() if e["event"] == "model_call"]
    expected = sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls) / 1e6
    assert report["totals"]["spent_usd"] == pytest.approx(expected, abs=1e-8)
    assert agent["cost_usd"] == pytest.approx(expected, abs=1e-8)
    names = {e["event"] for e in run.events()}
    assert {"run_started", "state_changed", "plan", "tool_call", "model_call", "tests_finished", "pushed",
            "run_finished"} <= names
    assert (run.state_dir / "runs" / report["run_id"] / "report.md").read_text().count("pushed") >= 1


def test_failing_tests_push_nothing(start: Any, sample_repo: SampleRepo) -> None:
    script = [Bash("sed -i 's/count < threshold/count > threshold/' inventory/stock.py"), Submit("Tweaked.")]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url)
    assert run.exit_code == 1
    agent = run.report()["agents"][0]
    assert agent["status"] == "tests_failed" and not agent["pushed"] and not agent["tests_passed"]
    assert "failed" in agent["reason"]
    assert remote_branches(sample_repo.remote) == ["main"]


def test_budget_stops_the_run_without_overspending(start: Any, sample_repo: SampleRepo) -> None:
    script = [Bash(f"echo step {i} > step.txt") for i in range(60)]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url, budget="0.05", price="2/2")
        calls = len(server.requests)
    assert run.exit_code == 3, run.stderr
    report = run.report()
    assert report["agents"][0]["status"] == "budget_exhausted"
    assert 0 < report["totals"]["spent_usd"] <= 0.05
    assert 3 <= calls < 40
    assert remote_branches(sample_repo.remote) == ["main"]
    # The work so far is kept (imported into the run repository), never pushed.
    assert any(e["event"] == "work_kept" for e in run.events())


def test_budget_too_small_for_a_useful_run_starts_nothing(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer([Bash("true")]) as server:
        run = start(server.base_url, budget="0.001")
        calls = len(server.requests)
    assert run.exit_code == 3
    agent = run.report()["agents"][0]
    assert agent["status"] == "budget_exhausted" and "not started" in agent["reason"]
    assert calls == 0 and run.report()["totals"]["spent_usd"] == 0


def test_sandbox_has_no_network_and_no_secret(start: Any, sample_repo: SampleRepo) -> None:
    script = [
        Bash("ls /sys/class/net; cat /proc/net/route; echo routes-end"),
        Bash("env; cat /proc/1/environ | tr '\\0' '\\n'; echo env-end"),
        Bash("git -C /origin config --list; ls -a ~; echo files-end"),
        Submit("Looked around."),
    ]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url, "--keep")
        seen = tool_outputs(server)
    assert "routes-end" in seen and "env-end" in seen and "files-end" in seen
    assert "eth0" not in seen
    assert API_KEY not in seen
    assert API_KEY not in Path(run.state_dir / "runs").joinpath(run.report()["run_id"], "events.jsonl").read_text()
    inspect = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}} {{.HostConfig.NetworkMode}}",
                              _container_of(run)], capture_output=True, text=True, check=True).stdout
    assert API_KEY not in inspect and "none" in inspect
    subprocess.run(["docker", "rm", "-f", _container_of(run)], capture_output=True, check=False)


def _container_of(run: Any) -> str:
    for event in run.events():
        if event["event"] == "sandbox_created":
            return str(event["container_id"])
    raise AssertionError("no sandbox_created event")


def test_planted_hooks_and_fsmonitor_do_not_run_on_the_host(start: Any, sample_repo: SampleRepo,
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    plant = (
        f"for h in post-checkout pre-push reference-transaction post-merge post-commit pre-commit; do "
        f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/hooks/$h; chmod +x .git/hooks/$h; done; "
        f"git config core.fsmonitor 'touch {marker}'; git config diff.external 'touch {marker}'; "
        f"printf '* filter=evil\\n' > .gitattributes; git config filter.evil.clean 'touch {marker}; cat'"
    )
    script = [Bash(plant), Bash("echo 'X = 1' > inventory/extra.py"), Submit("Added a constant.")]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url)
    assert run.exit_code == 0, run.stderr
    assert run.report()["agents"][0]["pushed"]
    assert not marker.exists()


def test_rate_limits_and_server_errors_are_retried_and_visible(start: Any, sample_repo: SampleRepo) -> None:
    script = [Fail(429, headers={"retry-after": "0.2"}), Fail(503), *ADD_FEATURE]
    with ScriptedModelServer(script) as server:
        run = start(server.base_url)
    assert run.exit_code == 0, run.stderr
    errors = [e for e in run.events() if e["event"] == "model_http_error"]
    assert [(e["status"], e["retry_after"]) for e in errors] == [(429, "0.2"), (503, None)]
    assert all(e["agent"] == "a1" for e in errors)
    assert run.report()["agents"][0]["pushed"]


def test_model_failing_after_retries_fails_the_agent_cleanly(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer([Bash("ls"), Fail(500)]) as server:
        run = start(server.base_url)
    assert run.exit_code == 1
    agent = run.report()["agents"][0]
    assert agent["status"] == "failed" and "model call failed" in agent["reason"]
    assert len([e for e in run.events() if e["event"] == "model_http_error"]) == 3  # first try + 2 retries


def test_start_on_a_terminal_shows_the_live_dashboard(sample_repo: SampleRepo, agent_image: str) -> None:
    import os
    import pty
    import select
    import sys

    with ScriptedModelServer(ADD_FEATURE) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=server.base_url, COLUMNS="120", TERM="xterm")
        pid, fd = pty.fork()
        if pid == 0:  # the child: the CLI on a terminal, as a person runs it
            os.execvpe(sys.executable, [sys.executable, "-m", "orchestrator", "start", "--repo",
                                        str(sample_repo.path), "--task", "Expose low_stock", "--model", "scripted",
                                        "--price", "1/1", "--no-approval"], env)
        screen = b""
        while True:
            ready, _, _ = select.select([fd], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        _, status = os.waitpid(pid, 0)
    text = screen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    assert "budget" in text and "agent" in text and "recent events" in text
    assert '{"event"' not in text  # no raw JSON lines fighting with the live view


def test_replay_of_a_recorded_run_makes_the_same_calls_at_the_same_cost(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer(ADD_FEATURE) as server:
        recorded = start(server.base_url)
    assert recorded.exit_code == 0, recorded.stderr
    first = recorded.report()
    # Replay needs no model server at all: the recording answers.
    subprocess.run(["git", "push", "-q", str(sample_repo.remote), "--delete", first["agents"][0]["branch"]],
                   cwd=sample_repo.path, check=True)
    replayed = start("http://127.0.0.1:9/v1", "--model", f"replay:{first['run_id']}")
    assert replayed.exit_code == 0, replayed.stderr
    second = replayed.report()
    assert second["totals"]["spent_usd"] == first["totals"]["spent_usd"]
    commands = [[e["command"] for e in run.events() if e["event"] == "tool_call"] for run in (recorded, replayed)]
    assert commands[0] == commands[1] and commands[0]
    assert second["agents"][0]["pushed"]
