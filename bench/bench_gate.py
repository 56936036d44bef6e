"""Benchmark the test gate's extra cost against the test run itself.

    python3 bench/bench_gate.py [-n 5] [--test-seconds 0]

On the sample project (plus, with --test-seconds S, one test that sleeps S
seconds so the suite weighs like a real one) it times, medians of n:
  - the test command alone in an already running sandbox (what any gate pays);
  - the gate: a fresh sandbox cloned at the change, the tests, the JUnit verdict;
  - the gate with the base-tests phase (the change touches a test file);
  - the host-side checks: refusals and test-change detection in the run repo.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import gitops  # noqa: E402
from orchestrator.gate import GATE_ENV, base_phase, find_test_changes, run_gate  # noqa: E402
from orchestrator.sample import make_sample_repo  # noqa: E402
from sandbox.base import SandboxSpec  # noqa: E402
from sandbox.docker import DockerBackend  # noqa: E402
from sandbox.images import AGENT_IMAGE  # noqa: E402
from timing import timed  # noqa: E402

TEST = "python3 -m pytest -q"



def row(name: str, times: list[float]) -> str:
    return f"| {name} | {statistics.median(times):.3f} s | {max(times):.3f} s | {len(times)} |"


def make_change(root: Path, test_seconds: float) -> tuple[Path, str, str]:
    """A run repository holding the sample project and one agent-like commit that edits a test."""
    sample = make_sample_repo(root / "sample")
    if test_seconds:  # in the base, so both the change's and the base's runs pay it
        slow = f"def test_slow():\n    import time\n    time.sleep({test_seconds})\n"
        (sample.path / "tests" / "test_slow.py").write_text(slow)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "-C", str(sample.path), "add", "-A"],
                       check=True)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "-C", str(sample.path), "commit",
                        "-qm", "slow test"], check=True)
    user = gitops.inspect_user_repo(sample.path)
    run_repo = gitops.create_run_repo(user, root / "origin.git")
    work = root / "work"
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b", "-C", str(work)]
    subprocess.run(["git", "clone", "-q", str(run_repo), str(work)], check=True)
    extra = "\n\ndef test_extra():\n    assert low_stock(0) == []\n"
    (work / "tests" / "test_stock.py").write_text((work / "tests" / "test_stock.py").read_text() + extra)
    subprocess.run([*git, "commit", "-qam", "change"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "HEAD:refs/heads/bench"], check=True)
    tip = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return run_repo, user.head, tip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--test-seconds", type=float, default=0.0)
    args = parser.parse_args()
    backend = DockerBackend()
    backend.preflight(AGENT_IMAGE)
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        run_repo, base, tip = make_change(Path(tmp), args.test_seconds)
        spec = SandboxSpec(image=AGENT_IMAGE, run_id="bench-gate", agent_id="g", origin=str(run_repo),
                           branch="bench", base_commit=tip, role="gate")
        changes = gitops.changed_files(run_repo, base, tip)
        phase = base_phase(base, changes)
        with backend.create(spec) as warm:
            warm.run(f"mkdir -p {GATE_ENV['HOME']}", env=GATE_ENV)
            alone = timed(lambda: warm.run(TEST, env=GATE_ENV, timeout_s=600), args.n)
        gate = timed(lambda: run_gate(backend.create, spec, TEST), args.n)
        both = timed(lambda: run_gate(backend.create, spec, TEST, base=phase), args.n)
        host = timed(lambda: (gitops.find_refusals(run_repo, base, tip, 5 << 20),
                              find_test_changes(gitops.changed_files(run_repo, base, tip))), args.n)
    print(f"test suite: sample project{f' + a {args.test_seconds:g} s test' if args.test_seconds else ''}\n")
    print("| what | median | max | n |\n|---|---|---|---|")
    print(row("test command alone, in a running sandbox", alone))
    print(row("gate: fresh sandbox + tests + verdict", gate))
    print(row("gate + base-tests phase", both))
    print(row("host checks: refusals + test changes", host))
    fresh = statistics.median(gate) - statistics.median(alone)
    base_extra = statistics.median(both) - statistics.median(gate)
    print(f"\nfresh-sandbox overhead: {fresh:.3f} s ({fresh / statistics.median(alone):.2f}x the test run); "
          f"base phase: +{base_extra:.3f} s ({base_extra / statistics.median(alone):.2f}x)")


if __name__ == "__main__":
    main()
