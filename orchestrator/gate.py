"""The test gate: the verdict that allows a push.

Tests run in a *fresh* sandbox cloned from the host-owned run repository at the
agent's imported commit, so nothing the agent left in its own sandbox (shims on
PATH, shell rc files, a Python user site, background processes) takes part.
The environment is the supervisor's, the verdict comes from the exit code and
the runner's JUnit XML report, never from text the tests print, and "no tests
ran", a crash or a timeout are failures.
"""

from __future__ import annotations

import secrets
import shlex
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Callable

from sandbox.base import Sandbox, SandboxError, SandboxSpec

# The whole environment the tests see; nothing is inherited.
GATE_ENV = {
    "HOME": "/tmp/fresh-gate-home",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "CI": "true",
}

# Paths whose change alters what the tests prove: flagged and, by default, sent to a person.
_TEST_CONFIG_FILES = {
    "conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", ".coveragerc",
    "noxfile.py",
}
# Files that can replace or wrap the test runner itself when they sit in the repository.
_RUNNER_SHADOWS = {"pytest.py", "_pytest", "pytest", "sitecustomize.py", "usercustomize.py"}


@dataclass(frozen=True)
class TestCounts:
    """Totals from the runner's report."""

    __test__ = False  # not a pytest test class
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, and the evidence."""

    passed: bool
    reason: str
    exit_code: int | None
    counts: TestCounts
    duration_s: float
    output_tail: str = ""
    test_changes: tuple[str, ...] = field(default=())
    base: Verdict | None = None  # the base commit's tests run against the change, when they ran


def is_test_path(path: str) -> bool:
    """Whether a changed path is a test or test configuration."""
    p = PurePosixPath(path)
    name = p.name
    return (
        name in _TEST_CONFIG_FILES
        or name.startswith("test_") and name.endswith(".py")
        or name.endswith("_test.py")
        or any(part in ("tests", "test") for part in p.parts[:-1])
    )


def shapes_the_test_run(path: str) -> bool:
    """Whether a file changes how tests run even when newly added (config, runner shadows, .pth)."""
    p = PurePosixPath(path)
    return p.name in _TEST_CONFIG_FILES or p.suffix == ".pth" or any(
        part in _RUNNER_SHADOWS for part in p.parts)


def find_test_changes(changes: list[tuple[str, str]]) -> tuple[str, ...]:
    """Tests or test configuration the agent modified or deleted, and added config or runner shadows.

    A new test file is fine; a new `conftest.py`, `pytest.ini` or `pytest.py` is not.
    """
    return tuple(
        f"{status} {path}" for status, path in changes
        if (status != "A" and is_test_path(path)) or shapes_the_test_run(path)
    )


def gate_command(test_command: str, report_path: str) -> str:
    """The policy's test command, with a JUnit report requested when the runner is pytest."""
    if "pytest" in shlex.split(test_command):
        return f"{test_command} -p no:cacheprovider --junitxml={shlex.quote(report_path)}"
    return test_command


def parse_junit(xml_bytes: bytes) -> TestCounts:
    """Totals from a JUnit XML report (pytest writes <testsuites><testsuite ...>)."""
    root = ET.fromstring(xml_bytes)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = TestCounts()
    for suite in suites:
        total = TestCounts(
            tests=total.tests + int(suite.get("tests", 0)),
            failures=total.failures + int(suite.get("failures", 0)),
            errors=total.errors + int(suite.get("errors", 0)),
            skipped=total.skipped + int(suite.get("skipped", 0)),
        )
    return total


def judge(exit_code: int | None, timed_out: bool, report: bytes | None, uses_junit: bool) -> tuple[bool, str, TestCounts]:
    """Turn the runner's exit code and report into (passed, reason, counts)."""
    if timed_out:
        return False, "the test run timed out", TestCounts()
    counts = TestCounts()
    if uses_junit:
        if report is None:
            return False, f"the test runner wrote no report (exit code {exit_code})", counts
        try:
            counts = parse_junit(report)
        except (ET.ParseError, ValueError):
            return False, "the test report is not valid JUnit XML", counts
        if counts.tests - counts.skipped <= 0:
            return False, "no tests ran", counts
        if counts.failures or counts.errors:
            return False, f"{counts.failures} failed, {counts.errors} errors", counts
    if exit_code != 0:
        return False, f"the test command exited with {exit_code}", counts
    return True, "tests passed", counts


@dataclass(frozen=True)
class BasePhase:
    """How to put the base commit's tests back over the change: restore these, delete those."""

    commit: str
    restore: tuple[str, ...]  # test paths the change modified or deleted
    remove: tuple[str, ...]  # test paths and test-shaping files the change added

    def command(self) -> str:
        q = " ".join(shlex.quote(p) for p in self.restore)
        r = " ".join(shlex.quote(p) for p in self.remove)
        steps = []
        if self.restore:
            steps.append(f"git -c core.hooksPath=/dev/null checkout -q {shlex.quote(self.commit)} -- {q}")
        if self.remove:
            steps.append(f"rm -rf -- {r}")
        return " && ".join(steps)


def base_phase(base_commit: str, changes: list[tuple[str, str]]) -> BasePhase | None:
    """The base-tests phase for a change, or None when the change leaves every test path alone."""
    touched = [(s, p) for s, p in changes if is_test_path(p) or shapes_the_test_run(p)]
    if not touched:
        return None  # the first run already ran exactly the base's tests
    return BasePhase(base_commit, tuple(p for s, p in touched if s != "A"),
                     tuple(p for s, p in touched if s == "A"))


def run_gate(
    create_sandbox: Callable[[SandboxSpec], Sandbox],
    spec: SandboxSpec,
    test_command: str,
    *,
    setup_command: str | None = None,
    timeout_s: float = 900.0,
    base: BasePhase | None = None,
    before_tests: Callable[[Sandbox], None] | None = None,
) -> Verdict:
    """Run the tests in a fresh sandbox built from `spec` and judge them; the sandbox is removed after.

    With `base`, the base commit's tests are then put back over the change in the
    same sandbox and run again; both runs must pass. `before_tests` runs after
    setup (e.g. to cut the network setup had).
    """
    started = time.monotonic()
    sandbox = create_sandbox(spec)
    try:
        if setup_command:
            setup = sandbox.run(f"mkdir -p {GATE_ENV['HOME']} && {setup_command}", timeout_s=timeout_s,
                                env=GATE_ENV)
            if not setup.ok:
                return Verdict(False, "the setup command failed in the gate", setup.exit_code,
                               TestCounts(), time.monotonic() - started, setup.text()[-2000:])
        if before_tests is not None:
            before_tests(sandbox)
        verdict = _run_tests(sandbox, test_command, timeout_s, started)
        if base is None or not verdict.passed:
            return verdict
        prepare = sandbox.run(base.command(), timeout_s=120, env=GATE_ENV)
        if not prepare.ok:
            return replace(verdict, passed=False, reason="could not restore the base tests",
                           output_tail=prepare.text()[-2000:])
        base_verdict = _run_tests(sandbox, test_command, timeout_s, time.monotonic())
        reason = f"{verdict.reason}; base tests: {base_verdict.reason}"
        return replace(verdict, passed=base_verdict.passed, reason=reason, base=base_verdict,
                       duration_s=time.monotonic() - started)
    finally:
        sandbox.remove()


def _run_tests(sandbox: Sandbox, test_command: str, timeout_s: float, started: float) -> Verdict:
    """One run of the test command, judged by its exit code and a report at a fresh secret path."""
    report_path = f"/tmp/fresh-gate-{secrets.token_hex(8)}/junit.xml"
    command = gate_command(test_command, report_path)
    uses_junit = command != test_command
    result = sandbox.run(f"mkdir -p {GATE_ENV['HOME']} && {command}", timeout_s=timeout_s, env=GATE_ENV)
    report: bytes | None
    try:
        report = sandbox.read_file(report_path) if uses_junit else None
    except SandboxError:
        report = None
    passed, reason, counts = judge(result.exit_code, result.timed_out, report, uses_junit)
    return Verdict(passed, reason, result.exit_code, counts, time.monotonic() - started,
                   result.text()[-2000:])
