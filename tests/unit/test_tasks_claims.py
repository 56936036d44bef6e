from __future__ import annotations

from pathlib import Path

from orchestrator.store import Store
from orchestrator.tasks.claims import (
    Claims, branch_slugs, claim, not_covered, overlapping, unclaimed,
)
from orchestrator.tasks.model import Task


def task(title: str, files: tuple[str, ...] = ()) -> Task:
    return Task(key=f"file:{title.lower()}", title=title, files=files)


def test_a_claim_is_exclusive_and_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "state" / "state.db"
    assert claim(db, "run1", "unhooked:pkg.f", "a1")
    assert claim(db, "run1", "unhooked:pkg.f", "a1")  # the holder asking again: still theirs
    assert not claim(db, "run1", "unhooked:pkg.f", "a2")
    # a resumed run (new process, new connection) sees the claim and does not hand it out again
    with Claims(db) as claims:
        assert claims.holder("unhooked:pkg.f") == ("run1", "a1")
        assert not claims.claim("run2", "unhooked:pkg.f", "a1")
        claims.release("unhooked:pkg.f")
    assert claim(db, "run2", "unhooked:pkg.f", "a3")


def test_claims_share_the_state_database_with_the_store(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store(db)
    store.start_run("run1", str(tmp_path), 1.0, 1, {})
    try:
        assert claim(db, "run1", "k", "a1")
        assert store.run("run1") is not None
    finally:
        store.close()
    tasks = [task("Keep"), Task(key="k", title="Taken")]
    assert [t.title for t in unclaimed(tasks, db)] == ["Keep"]
    assert unclaimed(tasks, tmp_path / "missing.db") == tasks


def test_tasks_with_an_earlier_branch_or_open_pull_request_are_skipped() -> None:
    branches = ["refs/heads/fresh/20250101-000000-ab12/a3-add-a-json-flag", "refs/heads/main",
                "fresh/x/not-an-agent-branch"]
    assert branch_slugs(branches) == {"add-a-json-flag"}
    tasks = [task("Add a JSON flag"), task("Write tests for pricing"), task("Fix the README")]
    kept = not_covered(tasks, branches, pull_titles=["Fix the README"])
    assert [t.title for t in kept] == ["Write tests for pricing"]


def test_overlap_pairs() -> None:
    changes = {"a1": {"x.py", "y.py"}, "a2": {"y.py"}, "a3": {"z.py"}}
    assert overlapping(changes) == [("a1", "a2", {"y.py"})]
