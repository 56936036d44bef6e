"""Many agents: parallel runs, control from another process, crash recovery, limits across agents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from tests.e2e.conftest import API_KEY, remote_branches, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def add_file(i: int) -> list[Any]:
    return [Bash(f"echo 'VALUE_{i} = {i}' > inventory/extra_{i}.py"), Submit(f"Added extra_{i}.")]


def tasks(n: int) -> list[str]:
    args = []
    for i in range(1, n + 1):
        args += ["--task", f"agent-task-{i:02d}"]
    return args


def start_args(repo: Path, *extra: str) -> list[str]:
    return ["start", "--repo", str(repo), "--model", "scripted", "--price", "1/1", "--output", "json", *extra]


def report_of(repo: Path) -> dict[str, Any]:
    runs = sorted((repo / ".fresh" / "runs").iterdir())
    return json.loads((runs[-1] / "report.json").read_text())  # type: ignore[no-any-return]


def popen_cli(args: list[str], base_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url)
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def status_json(repo: Path) -> dict[str, Any]:
    proc = run_cli(["status", "--repo", str(repo), "--format", "json"])
    return json.loads(proc.stdout) if proc.returncode == 0 else {"agents": []}  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def wait_for_states(repo: Path, states: list[str]) -> None:
    """Wait until the run's agents are in exactly these states, as `status` reports them."""
    wait_for(lambda: [a["state"] for a in status_json(repo)["agents"]] == states)


def run_containers(run_id: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fresh-sandbox.run={run_id}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_ten_agents_in_parallel(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {f"agent-task-{i:02d}": add_file(i) for i in range(1, 11)}
    with ScriptedModelServer(script, delay_s=0.3) as server:
        proc = run_cli(start_args(sample_repo.path, "--no-approval", "--budget", "5", *tasks(10)),
                       base_url=server.base_url, timeout=600)
        concurrent = server.max_concurrent
    assert proc.returncode == 0, proc.stderr
    report = report_of(sample_repo.path)
    assert [a["status"] for a in report["agents"]] == ["pushed"] * 10
    assert len([b for b in remote_branches(sample_repo.remote) if b.startswith("fresh/")]) == 10
    assert concurrent > 1
    assert run_containers(report["run_id"]) == []


def test_approve_and_reject_from_another_process(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {"agent-task-01": add_file(1), "agent-task-02": add_file(2)}
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--budget", "1", *tasks(2)), server.base_url)
        try:
            wait_for_states(sample_repo.path, ["awaiting_approval"] * 2)
            status = status_json(sample_repo.path)
            run_id = status["run"]["run_id"]
            assert len(run_containers(run_id)) == 2  # kept so a person can try the change
            assert run_cli(["approve", "a1", "--repo", str(sample_repo.path)]).returncode == 0
            assert run_cli(["reject", "a2", "--repo", str(sample_repo.path)]).returncode == 0
            assert proc.wait(timeout=120) == 1  # one agent rejected
        finally:
            proc.kill()
    agents = report_of(sample_repo.path)["agents"]
    assert (agents[0]["status"], agents[0]["pushed"]) == ("pushed", True)
    assert (agents[1]["status"], agents[1]["pushed"]) == ("rejected", False)
    assert [b for b in remote_branches(sample_repo.remote) if b.startswith("fresh/")] == [agents[0]["branch"]]
    assert run_containers(run_id) == []


def test_stop_from_another_process(sample_repo: SampleRepo, agent_image: str) -> None:
    with ScriptedModelServer([Bash("sleep 1")] * 50) as server:
        proc = popen_cli(start_args(sample_repo.path, "--no-approval", *tasks(1)), server.base_url)
        try:
            wait_for_states(sample_repo.path, ["implementation"])
            assert run_cli(["stop", "--repo", str(sample_repo.path)]).returncode == 0
            proc.wait(timeout=60)
        finally:
            proc.kill()
    agent = report_of(sample_repo.path)["agents"][0]
    assert agent["status"] == "stopped" and "request" in agent["reason"]


def test_sigkill_then_recover(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {"agent-task-01": [Bash("sleep 3"), *add_file(1)], "agent-task-02": [Bash("sleep 3"), *add_file(2)]}
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--no-approval", "--budget", "1", *tasks(2)), server.base_url)
        wait_for_states(sample_repo.path, ["implementation"] * 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = status_json(sample_repo.path)
        run_id = before["run"]["run_id"]
        assert before["run"]["status"] == "running"
        assert len(run_containers(run_id)) >= 2  # the sandboxes outlived the supervisor
        spent_before = sum(a["cost_usd"] for a in before["agents"])
        proc2 = run_cli(["recover", "--repo", str(sample_repo.path), "--output", "json"],
                        base_url=server.base_url, timeout=300)
    assert proc2.returncode == 0, proc2.stderr
    report = report_of(sample_repo.path)
    assert report["run_id"] == run_id
    assert [a["status"] for a in report["agents"]] == ["pushed", "pushed"]
    assert report["totals"]["spent_usd"] >= spent_before
    assert report["totals"]["spent_usd"] <= 1.0
    assert run_containers(run_id) == []
    assert "run_resumed" in (sample_repo.path / ".fresh" / "runs" / run_id / "events.jsonl").read_text()


def test_one_agent_out_of_memory_others_finish(sample_repo: SampleRepo, agent_image: str, tmp_path: Path) -> None:
    policy = tmp_path / "small.toml"
    policy.write_text("[limits]\nmemory_mb = 192\n")
    hog = [Bash("python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'"), *add_file(2)]
    script = {"agent-task-01": add_file(1), "agent-task-02": hog, "agent-task-03": add_file(3)}
    with ScriptedModelServer(script) as server:
        proc = run_cli(start_args(sample_repo.path, "--no-approval", "--policy", str(policy), *tasks(3)),
                       base_url=server.base_url, timeout=300)
        seen = json.dumps(server.requests)
    report = report_of(sample_repo.path)
    assert report["agents"][0]["status"] == "pushed" and report["agents"][2]["status"] == "pushed", proc.stderr
    assert "killed by SIGKILL" in seen or "MemoryError" in seen


def test_run_budget_hit_with_several_agents(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {f"agent-task-{i:02d}": [Bash(f"echo {j} > f.txt") for j in range(60)] for i in range(1, 4)}
    with ScriptedModelServer(script) as server:
        proc = run_cli(start_args(sample_repo.path, "--no-approval", "--budget", "0.12", "--agent-budget", "0.06",
                                  "--price", "2/2", *tasks(3)), base_url=server.base_url, timeout=300)
        calls = len(server.requests)
    assert proc.returncode == 3, proc.stderr
    report = report_of(sample_repo.path)
    assert all(a["status"] == "budget_exhausted" for a in report["agents"])
    assert report["totals"]["spent_usd"] <= 0.12
    assert sum(1 for a in report["agents"] if a["cost_usd"] > 0) >= 2
    assert calls < 3 * 40
    assert remote_branches(sample_repo.remote) == ["main"]


def test_work_window_closing_mid_run_drains(sample_repo: SampleRepo, agent_image: str, tmp_path: Path) -> None:
    now = datetime.now()
    closes = now + timedelta(seconds=10)
    if closes.date() != now.date():
        pytest.skip("too close to midnight for a same-day window")
    policy = tmp_path / "window.toml"
    policy.write_text(
        'schedule = "workhours"\n'
        f'work_hours = "00:00:00-{closes.strftime("%H:%M:%S")}"\n'
        'work_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
    )
    script = {f"agent-task-{i:02d}": [Bash(f"echo {j} >> work.txt; sleep 1") for j in range(60)] for i in (1, 2)}
    with ScriptedModelServer(script) as server:
        proc = run_cli(start_args(sample_repo.path, "--no-approval", "--policy", str(policy), *tasks(2)),
                       base_url=server.base_url, timeout=300)
    assert proc.returncode == 3, proc.stderr
    report = report_of(sample_repo.path)
    assert all(a["status"] == "stopped" and "window" in a["reason"] for a in report["agents"])
    events = (sample_repo.path / ".fresh" / "runs" / report["run_id"] / "events.jsonl").read_text()
    assert "run_window_closed" in events and events.count('"work_kept"') == 2
    assert remote_branches(sample_repo.remote) == ["main"]


def test_tasks_file_overlap_is_reported_and_serialised(sample_repo: SampleRepo, agent_image: str,
                                                       tmp_path: Path) -> None:
    tasks_file = tmp_path / "tasks.toml"
    tasks_file.write_text(
        '[[task]]\ntitle = "agent-task-01 document stock"\nkind = "task"\nfiles = ["inventory/stock.py"]\n\n'
        '[[task]]\ntitle = "agent-task-02 tidy stock"\nkind = "task"\nfiles = ["inventory/stock.py"]\n'
    )
    policy = tmp_path / "serial.toml"
    policy.write_text("serialise_overlapping = true\n")
    edit = "printf '\\n# %s\\n' {0} >> inventory/stock.py"
    script = {"agent-task-01": [Bash(edit.format("one")), Submit("Noted.")],
              "agent-task-02": [Bash(edit.format("two")), Submit("Noted.")]}
    with ScriptedModelServer(script, delay_s=0.3) as server:
        proc = run_cli(start_args(sample_repo.path, "--no-approval", "--tasks", str(tasks_file), "--policy",
                                  str(policy)), base_url=server.base_url, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = report_of(sample_repo.path)
    assert [a["status"] for a in report["agents"]] == ["pushed", "pushed"]
    assert report["overlaps"] == [{"agents": ["a1", "a2"], "files": ["inventory/stock.py"]}]
    events = [json.loads(line) for line in
              (sample_repo.path / ".fresh" / "runs" / report["run_id"] / "events.jsonl").read_text().splitlines()]
    first_done = next(e["timestamp"] for e in events if e.get("agent") == "a1" and e.get("state") == "pushed")
    second_start = next(e["timestamp"] for e in events if e.get("agent") == "a2" and e["event"] == "sandbox_created")
    assert second_start > first_done


def test_sigterm_drains_gracefully(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {f"agent-task-{i:02d}": [Bash(f"echo {j} >> work.txt; sleep 0.5") for j in range(60)] for i in (1, 2)}
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--no-approval", *tasks(2)), server.base_url)
        wait_for_states(sample_repo.path, ["implementation"] * 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1
    report = report_of(sample_repo.path)
    assert all(a["status"] == "stopped" and "SIGTERM" in a["reason"] for a in report["agents"])
    assert run_containers(report["run_id"]) == []
    events = (sample_repo.path / ".fresh" / "runs" / report["run_id"] / "events.jsonl").read_text()
    assert events.count('"work_kept"') == 2  # each agent's work so far is imported, not lost


def test_second_interrupt_exits_at_once_and_recover_finishes(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {"agent-task-01": [Bash("sleep 5"), *add_file(1)]}  # long enough for both signals
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--no-approval", *tasks(1)), server.base_url)
        wait_for_states(sample_repo.path, ["implementation"])
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert status_json(sample_repo.path)["run"]["status"] == "interrupted"
        proc2 = run_cli(["recover", "--repo", str(sample_repo.path), "--output", "json"], base_url=server.base_url)
    assert proc2.returncode == 0, proc2.stderr
    assert report_of(sample_repo.path)["agents"][0]["status"] == "pushed"


def test_agents_awaiting_approval_free_their_slot(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {"agent-task-01": add_file(1), "agent-task-02": add_file(2)}
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--agents", "1", *tasks(2)), server.base_url)
        try:
            # With one slot, the second agent can only get this far if the first one let go of it.
            wait_for_states(sample_repo.path, ["awaiting_approval"] * 2)
            for agent in ("a1", "a2"):
                assert run_cli(["approve", agent, "--repo", str(sample_repo.path)]).returncode == 0
            assert proc.wait(timeout=120) == 0
        finally:
            proc.kill()
    assert [a["status"] for a in report_of(sample_repo.path)["agents"]] == ["pushed", "pushed"]


def test_recover_retries_an_interrupted_push_idempotently(sample_repo: SampleRepo, agent_image: str) -> None:
    import sqlite3

    with ScriptedModelServer({"agent-task-01": add_file(1)}) as server:
        first = run_cli(start_args(sample_repo.path, "--no-approval", *tasks(1)), base_url=server.base_url)
        assert first.returncode == 0, first.stderr
        run_id = report_of(sample_repo.path)["run_id"]
        # Rewind the store to the moment between "pushing" and "pushed", as a crash would leave it.
        with sqlite3.connect(sample_repo.path / ".fresh" / "state.db") as db:
            db.execute("UPDATE agents SET state='pushing', pushed=0 WHERE run_id=?", (run_id,))
            db.execute("UPDATE runs SET status='running', pid=NULL WHERE run_id=?", (run_id,))
        again = run_cli(["recover", run_id, "--repo", str(sample_repo.path), "--output", "json"],
                        base_url=server.base_url)
    assert again.returncode == 0, again.stderr
    agent = report_of(sample_repo.path)["agents"][0]
    assert agent["status"] == "pushed" and agent["pushed"]
    assert "resuming_push" in again.stdout
    assert [b for b in remote_branches(sample_repo.remote) if b.startswith("fresh/")] == [agent["branch"]]


def test_pause_and_resume_from_another_process(sample_repo: SampleRepo, agent_image: str) -> None:
    script = {"agent-task-01": [*[Bash("sleep 0.3") for _ in range(6)], *add_file(1)]}
    with ScriptedModelServer(script) as server:
        proc = popen_cli(start_args(sample_repo.path, "--no-approval", *tasks(1)), server.base_url)
        try:
            wait_for_states(sample_repo.path, ["implementation"])
            assert run_cli(["pause", "a1", "--repo", str(sample_repo.path)]).returncode == 0
            time.sleep(1.5)  # the agent stops at its next step boundary
            held = status_json(sample_repo.path)["agents"][0]["steps"]
            time.sleep(1.5)
            assert status_json(sample_repo.path)["agents"][0]["steps"] == held
            calls_while_paused = len(server.requests)
            assert run_cli(["resume", "a1", "--repo", str(sample_repo.path)]).returncode == 0
            assert proc.wait(timeout=120) == 0
        finally:
            proc.kill()
    assert len(server.requests) > calls_while_paused
    report = report_of(sample_repo.path)
    assert report["agents"][0]["status"] == "pushed"
    events = (sample_repo.path / ".fresh" / "runs" / report["run_id"] / "events.jsonl").read_text()
    assert '"paused"' in events and '"resumed"' in events
