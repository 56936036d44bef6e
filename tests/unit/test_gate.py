"""The gate's judgement: exit code plus the JUnit report, never printed text."""

from __future__ import annotations

import pytest

from orchestrator.gate import gate_command, is_test_path, judge, find_test_changes, parse_junit

REPORT = b"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="{e}"
failures="{f}" skipped="{s}" tests="{t}" time="0.1"></testsuite></testsuites>"""


def report(t: int = 2, f: int = 0, e: int = 0, s: int = 0) -> bytes:
    return REPORT.replace(b"{t}", str(t).encode()).replace(b"{f}", str(f).encode()) \
        .replace(b"{e}", str(e).encode()).replace(b"{s}", str(s).encode())


def test_pass_needs_exit_zero_and_a_clean_report() -> None:
    assert judge(0, False, report(), True)[0] is True


@pytest.mark.parametrize("exit_code,timed_out,rep,reason", [
    (1, False, report(f=1), "1 failed"),
    (0, False, report(f=1), "1 failed"),  # a runner that lies with its exit code
    (1, False, report(), "exited with 1"),  # a crash after the report
    (5, False, report(t=0), "no tests ran"),
    (0, False, report(t=3, s=3), "no tests ran"),
    (0, False, None, "no report"),
    (0, False, b"<junk", "not valid JUnit"),
    (None, True, None, "timed out"),
])
def test_failures(exit_code: int | None, timed_out: bool, rep: bytes | None, reason: str) -> None:
    passed, why, _ = judge(exit_code, timed_out, rep, True)
    assert not passed and reason in why


def test_non_pytest_command_is_judged_by_exit_code() -> None:
    assert gate_command("make test", "/r.xml") == "make test"
    assert judge(0, False, None, False)[0] and not judge(2, False, None, False)[0]


def test_pytest_command_gets_a_report() -> None:
    assert "--junitxml=/r.xml" in gate_command("python3 -m pytest -q", "/r.xml")


def test_parse_junit_single_suite() -> None:
    counts = parse_junit(b'<testsuite tests="4" failures="1" errors="0" skipped="1"/>')
    assert (counts.tests, counts.failures, counts.skipped) == (4, 1, 1)


def test_test_changes_flag_modified_tests_and_config_not_new_tests() -> None:
    changes = [("M", "tests/test_stock.py"), ("A", "tests/test_new.py"), ("M", "inventory/stock.py"),
               ("D", "pkg/test_old.py"), ("M", "conftest.py"), ("M", "pyproject.toml")]
    assert find_test_changes(changes) == ("M tests/test_stock.py", "D pkg/test_old.py", "M conftest.py",
                                     "M pyproject.toml")
    assert not is_test_path("inventory/testing_helpers.py")


@pytest.mark.parametrize("path", ["conftest.py", "tests/conftest.py", "pytest.ini", "pytest.py",
                                  "sitecustomize.py", "pkg/usercustomize.py", "evil.pth", "_pytest/main.py"])
def test_added_config_and_runner_shadows_are_flagged(path: str) -> None:
    assert find_test_changes([("A", path)]) == (f"A {path}",)


def test_base_phase_restores_changed_tests_and_removes_added_shapers() -> None:
    from orchestrator.gate import base_phase

    changes = [("M", "tests/test_stock.py"), ("A", "conftest.py"), ("A", "tests/test_new.py"),
               ("D", "tests/test_old.py"), ("M", "inventory/stock.py")]
    phase = base_phase("abc123", changes)
    assert phase is not None
    assert phase.restore == ("tests/test_stock.py", "tests/test_old.py")
    assert phase.remove == ("conftest.py", "tests/test_new.py")
    assert "checkout -q abc123 -- tests/test_stock.py tests/test_old.py" in phase.command()
    assert base_phase("abc123", [("M", "inventory/stock.py")]) is None  # same tests: no second run
