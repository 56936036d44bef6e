"""Benchmark the supervisor with many agents against the real Docker daemon.

    python3 bench/bench_supervisor.py [--quick] [--sizes 1,10,50] [--delay 0.75] [--calls 3]

For each size N it starts `python -m orchestrator start --agents N --no-approval` on a
fresh sample repository, with N tasks answered by the scripted model server (run as its
own process; `--calls` bash turns then a submit, each held `--delay` seconds), and samples
/proc while it runs: the supervisor's CPU (its own, and its waited-for `git` children),
peak RSS (VmHWM) and threads; the CPU of dockerd/containerd/shims and of fuse-overlayfs;
the whole machine's busy time. Next to it, the raw baseline: `docker run --rm IMAGE true`
N times from N threads. Then it measures approve -> pushing: a run of `--approvals` agents
with approval on, `approve aK` from another process, the state read from state.db every
20 ms. Containers a run leaves behind are counted (a bug) and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.sample import make_sample_repo  # noqa: E402

IMAGE = "fresh-sandbox/agent:latest"
API_KEY = "sk-bench-0123456789"
TICK = os.sysconf("SC_CLK_TCK")
DAEMON = ("dockerd", "containerd", "containerd-shim", "runc", "docker-proxy")  # comm, cut at 15 chars
STORAGE = ("fuse-overlayfs",)


# -- /proc ------------------------------------------------------------------------------------
def read_stat(pid: int | str) -> tuple[str, int, float, float] | None:
    """(comm, start time, own CPU s, waited-children CPU s) of a process, None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    close = data.rindex(")")
    fields = data[close + 2:].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    return data[data.index("(") + 1:close], int(fields[19]), own, children


def read_status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS (kB) and Threads of a process; empty if it is gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


class Sampler:
    """Samples a process and the Docker daemon's processes every `period` s in a thread.

    Daemon processes come and go (a shim per container, runc per start); each is tracked by
    (pid, start time) and only its own CPU counts: a shim's waited-for children are the
    container's processes. CPU a process spends after its last sample is missed.
    """

    def __init__(self, pid: int | None = None, period: float = 0.2) -> None:
        self.pid = pid
        self.period = period
        self.own_s = self.children_s = 0.0
        self.peak_rss_kb = self.peak_threads = 0
        self._daemon: dict[tuple[int, int], tuple[str, float, float]] = {}  # key -> comm, first, last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._busy0 = machine_busy_s()
        self._wall0 = time.perf_counter()
        self._scan(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scan(first=False)
        self.machine_s = machine_busy_s() - self._busy0
        self.wall_s = time.perf_counter() - self._wall0

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._scan(first=False)

    def _scan(self, first: bool) -> None:
        if self.pid is not None:
            stat = read_stat(self.pid)
            if stat is not None:
                self.own_s, self.children_s = stat[2], stat[3]
            status = read_status(self.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, status.get("VmHWM", 0))
            self.peak_threads = max(self.peak_threads, status.get("Threads", 0))
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = read_stat(entry.name)
            if stat is None or not stat[0].startswith(DAEMON + STORAGE):
                continue
            key = (int(entry.name), stat[1])
            known = self._daemon.get(key)
            start = known[1] if known else (stat[2] if first else 0.0)
            self._daemon[key] = (stat[0], start, stat[2])

    def daemon_cpu_s(self, names: tuple[str, ...]) -> float:
        """CPU seconds spent by processes named `names` while sampling."""
        return sum(last - first for comm, first, last in self._daemon.values() if comm.startswith(names))


# -- the supervisor run -----------------------------------------------------------------------
@dataclass
class RunFigures:
    agents: int
    wall_s: float = 0.0
    pushed: int = 0
    exit_code: int = 0
    own_cpu_s: float = 0.0
    git_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_threads: int = 0
    daemon_cpu_s: float = 0.0
    storage_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    model_calls: int = 0
    leftovers: int = 0
    states: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # "agent state: reason" of agents not pushed
    baseline_wall_s: float = 0.0
    baseline_median_s: float = 0.0
    baseline_daemon_cpu_s: float = 0.0
    baseline_storage_cpu_s: float = 0.0


def task_name(i: int) -> str:
    return f"bench-task-{i:03d}"


def script_for(n: int, calls: int) -> dict[str, list[dict[str, str]]]:
    """Each agent looks around, writes one file, and submits."""
    looks = ["ls -R inventory tests", "cat inventory/stock.py", "git log --oneline | head", "python3 -c 'print(1)'"]
    script = {}
    for i in range(1, n + 1):
        turns = [{"bash": looks[j % len(looks)]} for j in range(max(0, calls - 1))]
        turns.append({"bash": f"echo 'VALUE_{i} = {i}' > inventory/extra_{i}.py"})
        script[task_name(i)] = [*turns, {"submit": f"Added extra_{i}."}]
    return script


class ModelServer:
    """`python -m orchestrator.testing serve` in its own process, so its CPU is nobody else's."""

    def __init__(self, script: dict[str, Any], delay: float, work: Path) -> None:
        path = work / "script.json"
        path.write_text(json.dumps(script))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.testing", "serve", "--script", str(path), "--delay", str(delay)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.proc.kill()
            raise SystemExit(f"the scripted model server did not start (exit {self.proc.wait()})")

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def cli(args: list[str], base_url: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FRESH_"))}
    env.update(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url)
    err = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)


def start_args(repo: Path, n: int, policy: Path, *extra: str) -> list[str]:
    tasks = [arg for i in range(1, n + 1) for arg in ("--task", task_name(i))]
    return ["start", "--repo", str(repo), "--model", "scripted", "--price", "1/1", "--output", "json",
            "--agents", str(n), "--budget", str(max(5, n)), "--policy", str(policy), *extra, *tasks]


def db_rows(repo: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the run's state.db, read-only (empty before it exists)."""
    path = repo / ".fresh" / "state.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # created, but its tables not yet
        return []


def reap_run(repo: Path) -> int:
    """Remove the containers of the repo's latest run; how many there were."""
    rows = db_rows(repo, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    if not rows:
        return 0
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fresh-sandbox.run={rows[0][0]}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    return len(ids)


def run_supervisor(n: int, work: Path, policy: Path, delay: float, calls: int) -> RunFigures:
    """One `start` of n agents at once, sampled from /proc until it exits."""
    sample = make_sample_repo(work / f"n{n}")
    figures = RunFigures(agents=n)
    with ModelServer(script_for(n, calls), delay, work) as server:
        proc = cli(start_args(sample.path, n, policy, "--no-approval"), server.base_url, work / f"n{n}.log")
        with Sampler(proc.pid) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
    figures.exit_code = proc.returncode
    figures.wall_s = sampler.wall_s
    figures.own_cpu_s = sampler.own_s
    figures.git_cpu_s = max(0.0, usage.ru_utime + usage.ru_stime - sampler.own_s)
    figures.peak_rss_mb = max(sampler.peak_rss_kb, usage.ru_maxrss) / 1024
    figures.peak_threads = sampler.peak_threads
    figures.daemon_cpu_s = sampler.daemon_cpu_s(DAEMON)
    figures.storage_cpu_s = sampler.daemon_cpu_s(STORAGE)
    figures.machine_cpu_s = sampler.machine_s
    for state, count in db_rows(sample.path, "SELECT state, count(*) FROM agents GROUP BY state"):
        figures.states[state] = count
    figures.pushed = figures.states.get("pushed", 0)
    figures.failures = [f"{a} {st}: {why}" for a, st, why in
                        db_rows(sample.path, "SELECT agent_id, state, reason FROM agents WHERE state != 'pushed'")]
    figures.model_calls = sum(r[0] for r in db_rows(sample.path, "SELECT steps FROM agents"))
    figures.leftovers = reap_run(sample.path)
    if figures.pushed != n:
        print(f"  n={n}: exit {proc.returncode}, states {figures.states}; log {work / f'n{n}.log'}",
              file=sys.stderr)
    return figures


def docker_run_true(label: str) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--label", label, IMAGE, "true"], capture_output=True, check=True)
    return time.perf_counter() - start


def baseline(n: int, figures: RunFigures) -> None:
    """`docker run --rm IMAGE true` n times from n threads, with the daemon's CPU."""
    label = f"fresh-sandbox.bench={os.getpid()}"
    with Sampler() as sampler, ThreadPoolExecutor(max_workers=n) as pool:
        times = list(pool.map(lambda _: docker_run_true(label), range(n)))
    figures.baseline_wall_s = sampler.wall_s
    figures.baseline_median_s = statistics.median(times)
    figures.baseline_daemon_cpu_s = sampler.daemon_cpu_s(DAEMON)
    figures.baseline_storage_cpu_s = sampler.daemon_cpu_s(STORAGE)


# -- approve -> pushing -----------------------------------------------------------------------
def wait_states(repo: Path, wanted: set[str], agents: list[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = dict(db_rows(repo, "SELECT agent_id, state FROM agents"))
        if all(states.get(a) in wanted for a in agents):
            return
        time.sleep(0.02)
    raise TimeoutError(f"agents {agents} not in {wanted} after {timeout:.0f} s: {states}")


def approval_latencies(n: int, work: Path, policy: Path, delay: float,
                       calls: int) -> list[tuple[float, float, float]]:
    """(`approve` process time, its start -> pushing, command stored -> pushing) for n agents in turn."""
    sample = make_sample_repo(work / "approve")
    agents = [f"a{i}" for i in range(1, n + 1)]
    out = []
    with ModelServer(script_for(n, calls), delay, work) as server:
        proc = cli(start_args(sample.path, n, policy), server.base_url, work / "approve.log")
        try:
            wait_states(sample.path, {"awaiting_approval"}, agents, timeout=300)
            for agent in agents:
                began = time.perf_counter()
                subprocess.run([sys.executable, "-m", "orchestrator", "approve", agent, "--repo", str(sample.path)],
                               cwd=ROOT, capture_output=True, check=True)
                sent = time.perf_counter()
                wait_states(sample.path, {"pushing", "pushed"}, [agent], timeout=60)
                seen, seen_wall = time.perf_counter(), time.time()
                stored = db_rows(sample.path, f"SELECT max(created_at) FROM commands WHERE agent_id = '{agent}'")
                out.append((sent - began, seen - began, seen_wall - stored[0][0]))
                wait_states(sample.path, {"pushed"}, [agent], timeout=60)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            reap_run(sample.path)
    return out


# -- the report -------------------------------------------------------------------------------
def table(rows: list[RunFigures]) -> str:
    head = ("| agents | wall s | pushed | supervisor CPU s (per agent) | host git CPU s | peak RSS MB | threads "
            "| dockerd+containerd+shims CPU s | fuse-overlayfs CPU s | machine busy s "
            "| baseline `docker run` xN wall s (median each) | baseline daemon+fuse CPU s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.agents} | {r.wall_s:.1f} | {r.pushed}/{r.agents} | {r.own_cpu_s:.2f} ({r.own_cpu_s / r.agents:.3f}) "
            f"| {r.git_cpu_s:.2f} | {r.peak_rss_mb:.0f} | {r.peak_threads} | {r.daemon_cpu_s:.1f} "
            f"| {r.storage_cpu_s:.1f} | {r.machine_cpu_s:.1f} | {r.baseline_wall_s:.1f} ({r.baseline_median_s:.2f}) "
            f"| {r.baseline_daemon_cpu_s:.1f} + {r.baseline_storage_cpu_s:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1 and 10 only")
    parser.add_argument("--sizes", default="1,10,50", help="agent counts, comma-separated")
    parser.add_argument("--delay", type=float, default=0.75, help="model latency per call, seconds")
    parser.add_argument("--calls", type=int, default=3, help="bash calls per agent before its submit")
    parser.add_argument("--approvals", type=int, default=3, help="agents in the approve -> pushing run (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the repositories, logs and events")
    args = parser.parse_args()
    sizes = [1, 10] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows: list[RunFigures] = []
    with tempfile.TemporaryDirectory(prefix="bench-supervisor-") as tmp:
        work = Path(tempfile.mkdtemp(prefix="bench-supervisor-")) if args.keep else Path(tmp)
        print(f"working in {work}", file=sys.stderr)
        policy = work / "small.toml"
        policy.write_text("[limits]\nmemory_mb = 256\n")  # 50 sandboxes fit in memory
        for n in sizes:
            print(f"running {n} agent(s)...", file=sys.stderr)
            figures = run_supervisor(n, work, policy, args.delay, args.calls)
            baseline(n, figures)
            rows.append(figures)
        latencies = approval_latencies(args.approvals, work, policy, args.delay, args.calls) if args.approvals else []
    print(f"model latency {args.delay} s/call, {args.calls + 1} calls per agent; memory_mb 256\n")
    print(table(rows))
    for r in rows:
        if r.leftovers or r.exit_code:
            print(f"\n{r.agents} agents: exit code {r.exit_code}, {r.leftovers} container(s) left behind, "
                  f"states {r.states}")
            print("\n".join(f"  {line}" for line in r.failures))
    if latencies:
        cli_s = statistics.median(c for c, _, _ in latencies)
        total = [t for _, t, _ in latencies]
        stored = [s for _, _, s in latencies]
        print(f"\napprove -> pushing: median {statistics.median(total):.3f} s over {len(total)} "
              f"(max {max(total):.3f} s); the `approve` process itself {cli_s:.3f} s; "
              f"command stored -> pushing {statistics.median(stored):.3f} s (max {max(stored):.3f} s)")
    if args.json:
        args.json.write_text(json.dumps({"runs": [r.__dict__ for r in rows], "approvals": latencies}, indent=2))


if __name__ == "__main__":
    main()
