"""Item 4: limits the agent cannot slip, and item 6's binary output, played by one hostile agent.

A second agent in the same run does ordinary work and must push regardless.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from tests.security.conftest import remote_branches, run_cli

pytestmark = [pytest.mark.docker]

POLICY = """
command_timeout_s = 4
output_cap_bytes = 4096
[limits]
memory_mb = 256
pids = 64
workspace_mb = 32
tmp_mb = 16
home_mb = 16
"""

HOSTILE = [
    # 0-2: every writable place is sized: ENOSPC, not the host's disk
    Bash("head -c 100M /dev/zero > /workspace/fill; echo rc=$?; df -m /workspace | tail -1; rm -f /workspace/fill"),
    Bash("head -c 100M /dev/zero > /tmp/fill; echo rc=$?; rm -f /tmp/fill"),
    Bash("head -c 100M /dev/zero > ~/fill; echo rc=$?; rm -f ~/fill"),
    # 3: a fork bomb meets the pids limit; 4: the sandbox still works afterwards
    Bash(":(){ :|:& };:"),
    Bash("echo alive-after-bomb; ps -e --no-headers | wc -l"),
    # 5: memory past the limit is killed
    Bash("python3 -c 'x = bytearray(600 * 2**20); print(len(x))'; echo rc=$?"),
    # 6: a command ignoring SIGTERM is killed at its deadline with its group
    Bash("trap '' TERM; (trap '' TERM; sleep 1000) & sleep 1000"),
    # 7: a background process holding stdout open does not stall the step
    Bash("(sleep 600 &) ; nohup sleep 601 >/dev/stdout 2>&1 & echo bg-started"),
    # 8: an escapee in its own session is killed after the step that started it
    Bash("setsid sleep 777 >/dev/null 2>&1 < /dev/null & echo escaped"),
    Bash("ps -eo args | grep -v grep | grep -cE 'sleep (1000|600|601|777)'; echo procs-checked"),
    # 10: huge output is cut before the model and the logs; 11: binary and invalid UTF-8
    Bash("head -c 20M /dev/zero | tr '\\0' 'A'"),
    Bash("printf 'bad:\\xff\\xfe\\xc0\\x00end\\n'; head -c 2000 /dev/urandom"),
    Submit("Probed the limits."),
]

HONEST = [Bash("echo 'X = 1' > inventory/extra.py"), Submit("Added a constant.")]


def test_limits_hold_and_the_other_agent_is_unaffected(sample_repo: SampleRepo, agent_image: str,
                                                       tmp_path: Path) -> None:
    policy = tmp_path / "tight.toml"
    policy.write_text(POLICY)
    with ScriptedModelServer({"hostile": HOSTILE, "honest": HONEST}) as server:
        proc = run_cli(["start", "--repo", str(sample_repo.path), "--task", "hostile", "--task", "honest",
                        "--model", "scripted", "--price", "1/1", "--budget", "1", "--no-approval",
                        "--policy", str(policy), "--output", "json"], base_url=server.base_url)
        out = [tool_outputs_of(server, "hostile")]
    seen = out[0]
    assert all("rc=" in seen[i] and "rc=0" not in seen[i] for i in (0, 1, 2)), seen[:3]
    assert all("No space left on device" in seen[i] for i in (0, 1, 2))
    assert "alive-after-bomb" in seen[4]
    assert "rc=137" in seen[5] or "Killed" in seen[5] or "MemoryError" in seen[5], seen[5]
    assert "timed out" in seen[6].lower() or "deadline" in seen[6].lower(), seen[6]
    assert "bg-started" in seen[7], seen[7]
    assert "escaped" in seen[8], seen[8]
    assert seen[9].split()[0] == "0" or "\n0\n" in seen[9], seen[9]  # no leftover of steps 6-8
    assert len(seen[10]) < 6000 and "truncated" in seen[10]
    assert "bad:" in seen[11] and "end" in seen[11]
    assert all("\x00" * 64 not in out for out in seen)  # no padding from the preallocated output file
    events = events_text_of(sample_repo)
    assert "A" * 5000 not in events  # the flood reached neither the model nor the logs
    report = json.loads(sorted((sample_repo.path / ".fresh" / "runs").iterdir())[-1].joinpath("report.json")
                        .read_text())
    by_task = {a["task"]: a for a in report["agents"]}
    assert by_task["honest"]["status"] == "pushed", by_task["honest"]
    assert by_task["hostile"]["status"] == "no_changes", by_task["hostile"]
    assert by_task["honest"]["branch"] in remote_branches(sample_repo.remote)
    assert proc.returncode in (0, 1), proc.stderr
    assert _containers_of(sample_repo) == []  # no process outlives the agents: no container is left


def tool_outputs_of(server: ScriptedModelServer, task: str) -> list[str]:
    requests = [r for r in server.requests if task in json.dumps(r["messages"][:2])]
    return [str(m["content"]) for m in requests[-1]["messages"] if m.get("role") == "tool"]


def events_text_of(repo: SampleRepo) -> str:
    return sorted((repo.path / ".fresh" / "runs").iterdir())[-1].joinpath("events.jsonl").read_text()


def _containers_of(repo: SampleRepo) -> list[str]:
    import subprocess
    run_id = sorted((repo.path / ".fresh" / "runs").iterdir())[-1].name
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fresh-sandbox.run={run_id}"],
                          capture_output=True, text=True, check=True).stdout.split()
