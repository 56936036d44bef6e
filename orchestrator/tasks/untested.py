"""Untested code: run the project's tests with line tracing inside a sandbox, never on the host.

The host makes a host-owned bare clone, starts a sandbox from it, copies in
`tracer.py` (stdlib only: the image needs no coverage package and no
network), runs the tests under it and reads back {file: [executed lines]}.
Executable lines come from the host's own `ast` of the same commit, so the
sandbox only reports facts, and public functions run less than half are
grouped into one "write tests" task per module.
"""

from __future__ import annotations

import ast
import secrets
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.tasks.codebase import Codebase, Symbol
from orchestrator.tasks.model import Task
from sandbox.base import Backend, SandboxSpec

TRACER = Path(__file__).with_name("tracer.py")
TRACER_PATH = "/tmp/fresh-tracer.py"
RESULT_PATH = "/tmp/fresh-lines.json"
MAX_RESULT_BYTES = 64 * 1024 * 1024
THRESHOLD = 0.5  # a function counts as untested below this share of its statements run


@dataclass(frozen=True)
class TestRun:
    """What the traced test run left behind."""

    __test__ = False
    executed: dict[str, set[int]]  # relative path -> lines run
    exit_code: int | None
    output_tail: str


@dataclass(frozen=True)
class FunctionCoverage:
    name: str
    lineno: int
    statements: int
    run: int

    @property
    def share(self) -> float:
        return self.run / self.statements if self.statements else 1.0


def traced_command(test_command: str) -> str:
    """`python3 tracer.py OUT -m MODULE ARGS` for a `python -m ...` test command, else pytest."""
    words = shlex.split(test_command)
    if len(words) >= 3 and words[0].startswith("python") and words[1] == "-m":
        module, args = words[2], words[3:]
    else:
        module, args = "pytest", ["-q"]
    if module == "pytest":
        args = [*args, "-p", "no:cacheprovider"]
    return shlex.join(["python3", TRACER_PATH, RESULT_PATH, "-m", module, *args])


def run_traced_tests(repo: Path, backend: Backend, image: str, *, test_command: str = "python3 -m pytest -q",
                     timeout_s: float = 900.0) -> TestRun:
    """Run the tests of `repo`'s HEAD in a fresh sandbox under the tracer; the sandbox is removed after."""
    import json

    from pydantic import TypeAdapter, ValidationError

    from orchestrator import gitops
    from orchestrator.errors import PreflightError
    from orchestrator.gate import GATE_ENV

    backend.preflight(image)
    root = Path(gitops.git("rev-parse", "--show-toplevel", cwd=repo, isolated=False))
    head = gitops.git("rev-parse", "HEAD", cwd=root, isolated=False)
    with tempfile.TemporaryDirectory(prefix="fresh-discovery-") as tmp:
        user = gitops.UserRepo(path=root, head=head, branch="HEAD", remote_url="")
        origin = gitops.create_run_repo(user, Path(tmp) / "origin.git")
        spec = SandboxSpec(image=image, run_id=f"discovery-{secrets.token_hex(4)}", agent_id="coverage",
                           origin=str(origin), branch="fresh-discovery", base_commit=head, role="discovery")
        sandbox = backend.create(spec)
        try:
            sandbox.write_file(TRACER_PATH, TRACER.read_bytes())
            result = sandbox.run(f"mkdir -p {GATE_ENV['HOME']} && {traced_command(test_command)}",
                                 timeout_s=timeout_s, env=GATE_ENV)
            raw = sandbox.read_file(RESULT_PATH, max_bytes=MAX_RESULT_BYTES)
        finally:
            sandbox.remove()
    try:
        lines = TypeAdapter(dict[str, list[int]]).validate_python(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise PreflightError("the traced test run wrote an unreadable result",
                             hint="run `fresh-sandbox tasks --no-coverage` to skip this source") from exc
    return TestRun({path: set(numbers) for path, numbers in lines.items()}, result.exit_code,
                   result.text()[-1500:])


def statement_lines(node: ast.AST) -> set[int]:
    """Lines that start a statement in a function's body (the docstring excluded)."""
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return {n.lineno for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.stmt)}


def function_coverage(symbol: Symbol, executed: set[int]) -> list[FunctionCoverage]:
    """Coverage of a public function, or of each public method of a public class."""
    if not symbol.public:
        return []
    if symbol.kind == "function":
        nodes: list[tuple[str, ast.AST]] = [(symbol.name, symbol.node)]
    else:
        nodes = [(f"{symbol.name}.{n.name}", n) for n in symbol.node.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")]
    out = []
    for name, node in nodes:
        lines = statement_lines(node)
        if lines:
            out.append(FunctionCoverage(name, getattr(node, "lineno", 0), len(lines), len(lines & executed)))
    return out


def untested_tasks(code: Codebase, run: TestRun, threshold: float = THRESHOLD) -> list[Task]:
    """One task per module whose public functions the tests run less than `threshold` of."""
    tasks = []
    for module in code.modules.values():
        executed = run.executed.get(module.path, set())
        weak = [c for s in module.defs.values() for c in function_coverage(s, executed) if c.share < threshold]
        if not weak:
            continue
        missing = sum(c.statements - c.run for c in weak)
        evidence = [f"{module.path}:{c.lineno} {c.name}: {c.run} of {c.statements} statements run by the tests"
                    for c in sorted(weak, key=lambda c: c.lineno)]
        if run.exit_code != 0:
            evidence.append(f"the traced test run exited with {run.exit_code}")
        names = ", ".join(c.name for c in weak[:5]) + (" ..." if len(weak) > 5 else "")
        tasks.append(Task(
            key=f"untested:{module.path}", title=f"Write tests for {module.name}",
            description=f"The test suite barely runs {names} in `{module.path}`. Add tests that exercise "
                        "their behaviour, edge cases and errors, without changing the code under test.",
            kind="tests", score=min(10.0 + missing, 45.0), source="untested",
            evidence=tuple(evidence), files=(module.path,),
        ))
    return tasks
