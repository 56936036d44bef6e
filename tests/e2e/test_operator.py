"""The operator's commands end to end: logs, inspect, diff, shell, status, report, doctor, logs -f."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from orchestrator.tools import strip_control
from tests.e2e.conftest import API_KEY, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

SCRIPT = [Bash("ls inventory"), Bash("echo 'X = 1' > inventory/extra.py"), Submit("Added a constant.")]


def cli(repo: Path, *args: str, base_url: str = "") -> subprocess.CompletedProcess[str]:
    proc = run_cli([*args, "--repo", str(repo)], base_url=base_url, timeout=120)
    return proc


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_read_commands_after_a_run(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer(SCRIPT) as server:
        run = start(server.base_url)
    assert run.exit_code == 0, run.stderr
    repo = sample_repo.path

    logs = cli(repo, "logs", "--json")
    assert logs.returncode == 0, logs.stderr
    assert json_lines(logs.stdout) == run.events()

    calls = cli(repo, "logs", "--agent", "a1", "--event", "tool_call")  # piped: JSON without --json
    commands = [e["command"] for e in json_lines(calls.stdout)]
    assert commands == ["ls inventory", "echo 'X = 1' > inventory/extra.py"]
    assert cli(repo, "logs", "--level", "warning").stdout == ""

    inspect = cli(repo, "inspect", "a1", "--json")
    assert inspect.returncode == 0, inspect.stderr
    details = json.loads(inspect.stdout)
    assert details["state"] == "pushed" and details["pushed"] and details["tests"]["passed"]
    assert "inventory/extra.py" in details["diff_stat"] and "1 file changed" in details["diff_stat"]
    assert details["container"]["state"] == "removed"
    assert details["summary"] == "Added a constant." and details["cost_usd"] > 0
    assert 0 < len(details["events"]) <= 10 and {e["agent"] for e in details["events"]} == {"a1"}
    human = cli(repo, "inspect", "a1")
    assert "pushed" in human.stdout and "inventory/extra.py" in human.stdout and "removed" in human.stdout

    diff = cli(repo, "diff", "a1")
    assert diff.returncode == 0 and "+X = 1" in diff.stdout and "inventory/extra.py" in diff.stdout

    status = json.loads(cli(repo, "status", "--format", "json").stdout)
    assert status["run"]["status"] == "finished" and status["agents"][0]["state"] == "pushed"
    assert status["run"]["info"]["base_commit"] == details["base_commit"]
    report = json.loads(cli(repo, "report", "--format", "json").stdout)
    assert report["agents"][0]["branch"] == details["branch"]

    missing = cli(repo, "inspect", "a7")
    assert missing.returncode == 2 and "no agent 'a7'" in missing.stderr
    gone = cli(repo, "shell", "a1")
    assert gone.returncode == 2 and "--keep" in gone.stderr


def test_doctor_against_the_scripted_server(sample_repo: SampleRepo, agent_image: str) -> None:
    with ScriptedModelServer([Submit("done")], expected_key=API_KEY) as server:
        good = cli(sample_repo.path, "doctor", "--model", "scripted", "--price", "1/1", base_url=server.base_url)
        unpriced = cli(sample_repo.path, "doctor", "--model", "scripted", base_url=server.base_url)
        unlisted = cli(sample_repo.path, "doctor", "--model", "other", "--price", "1/1", base_url=server.base_url)
    assert good.returncode == 0, good.stdout
    for name in ("docker", "image", "model endpoint", "model price", "git repo", "git remote"):
        assert any(line.startswith("ok") and name in line for line in good.stdout.splitlines()), name
    assert unpriced.returncode == 1 and "fail model price" in unpriced.stdout and "--price" in unpriced.stdout
    assert unlisted.returncode == 0 and "warn model endpoint" in unlisted.stdout
    down = cli(sample_repo.path, "doctor", "--model", "scripted", "--price", "1/1")  # nothing listens on :9
    assert down.returncode == 1 and "fail model endpoint" in down.stdout


def _pty_session(argv: list[str], typed: bytes, timeout: float = 60) -> bytes:
    """Run `argv` on a pseudo-terminal, type `typed`, return all it printed."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output, sent, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other side closed
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and b"$ " in output:  # the prompt of the agent's bash
                os.write(master, typed)
                sent = True
            if proc.poll() is not None and not ready:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        os.close(master)
    return output


def test_shell_opens_in_the_agents_container(start: Any, sample_repo: SampleRepo) -> None:
    with ScriptedModelServer(SCRIPT) as server:
        run = start(server.base_url, "--keep")
    assert run.exit_code == 0, run.stderr
    container = next(e["container_id"] for e in run.events() if e["event"] == "sandbox_created")
    try:
        out = _pty_session([sys.executable, "-m", "orchestrator", "shell", "a1", "--repo", str(sample_repo.path)],
                           b"id -u; pwd; cat inventory/extra.py; exit\r")
        lines = strip_control(out.decode(errors="replace").replace("\r", "")).splitlines()
        assert "1000" in lines and "/workspace/repo" in lines and "X = 1" in lines, lines
        described = json.loads(cli(sample_repo.path, "inspect", "a1", "--json").stdout)["container"]
        assert described["state"] == "running" and described["network_mode"] == "none"
        assert described["limits"]["pids"] > 0 and "/workspace" in described["limits"]["tmpfs"]
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def _start_in_background(repo: Path, base_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FRESH_"))}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "start", "--repo", str(repo), "--task", "slow task", "--model",
         "scripted", "--price", "1/1", "--budget", "1", "--no-approval", "--output", "quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_run(db: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT count(*) FROM runs").fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass  # the supervisor is still creating the schema
        time.sleep(0.1)
    raise AssertionError("the run never appeared in the store")


def test_logs_follow_ends_when_the_run_ends(sample_repo: SampleRepo, agent_image: str) -> None:
    script = [Bash(f"echo step {i}") for i in range(6)] + [Bash("echo 'Y = 2' > inventory/y.py"), Submit("ok")]
    with ScriptedModelServer(script, delay_s=0.5) as server:
        background = _start_in_background(sample_repo.path, server.base_url)
        try:
            _wait_for_run(sample_repo.path / ".fresh" / "state.db")
            followed = cli(sample_repo.path, "logs", "-f", "--json")
            assert background.poll() is not None or background.wait(15) is not None
        finally:
            if background.poll() is None:
                background.kill()
            background.wait(30)
    assert followed.returncode == 0, followed.stderr
    events = json_lines(followed.stdout)
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert sum(1 for e in events if e["event"] == "tool_call") == 7
    assert background.returncode == 0, background.stderr.read() if background.stderr else ""
