"""Benchmark the Docker sandbox against bare Docker on this machine.

    python3 bench/bench_sandbox.py [-n 10] [--commands 200]

Prints median and p90 of: a bare `docker run --rm IMAGE true` (CLI), the same
through docker-py with our hardening, our create() to ready (container up,
clone done, first command answered), and one command: `docker exec CID true`
vs our channel's run("true").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.base import SandboxSpec  # noqa: E402
from sandbox.docker import DockerBackend, container_kwargs  # noqa: E402
from sandbox.images import AGENT_IMAGE  # noqa: E402
from timing import timed  # noqa: E402



def row(name: str, times: list[float], unit: float = 1.0, suffix: str = "s") -> str:
    qs = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    return f"| {name} | {statistics.median(times) * unit:.3f} {suffix} | {qs[8] * unit:.3f} {suffix} | {len(times)} |"


def make_origin(root: Path, commits: int = 50) -> tuple[Path, str]:
    """A bare repo with `commits` commits of a few small files; returns it and its HEAD."""
    work = root / "work"
    env = ["-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for i in range(commits):
        for f in range(5):
            (work / f"f{f}.py").write_text(f"# {i}\n" * 50)
        subprocess.run(["git", *env, "-C", str(work), "add", "-A"], check=True)
        subprocess.run(["git", *env, "-C", str(work), "commit", "-q", "-m", f"c{i}"], check=True)
    head = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "origin.git")], check=True)
    return root / "origin.git", head


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10, help="container starts per measure")
    parser.add_argument("--commands", type=int, default=200, help="commands per measure")
    args = parser.parse_args()
    backend = DockerBackend()
    run_id = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        origin, head = make_origin(Path(tmp))
        spec = SandboxSpec(image=AGENT_IMAGE, run_id=run_id, agent_id="bench", origin=str(origin),
                           branch="agent/work", base_commit=head)
        try:
            rows = measure(backend, spec, args.n, args.commands)
        finally:
            backend.reap(run_id)
    print("| what | median | p90 | n |\n|---|---|---|---|")
    print("\n".join(rows))


def measure(backend: DockerBackend, spec: SandboxSpec, n: int, commands: int) -> list[str]:
    client = backend.client
    timed(lambda: subprocess.run(["docker", "run", "--rm", AGENT_IMAGE, "true"], check=True), 2)
    rows = [row("`docker run --rm IMAGE true` (CLI)", timed(
        lambda: subprocess.run(["docker", "run", "--rm", AGENT_IMAGE, "true"], check=True), n))]
    hardened = container_kwargs(spec)
    hardened.update(command=["true"], remove=True)
    rows.append(row("docker-py `containers.run` true, same hardening", timed(
        lambda: client.containers.run(**hardened), n)))

    def ready() -> None:
        sb = backend.create(spec)
        sb.run("true")
        ready_sandboxes.append(sb)

    ready_sandboxes: list[object] = []
    ready_times = timed(ready, n)
    for sb in ready_sandboxes:
        sb.remove()  # type: ignore[attr-defined]
    rows.append(row("our `create()` to ready (up, cloned, first command)", ready_times))

    with backend.create(spec) as sb:
        rows.append(row("`docker exec CID true` (CLI)", timed(
            lambda: subprocess.run(["docker", "exec", sb.id, "true"], check=True), min(commands, 50)),
            1000, "ms"))
        rows.append(row("our channel `run(\"true\")`", timed(lambda: sb.run("true"), commands),
                        1000, "ms"))
    return rows


if __name__ == "__main__":
    main()
