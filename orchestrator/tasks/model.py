"""The Task: one candidate piece of work, with where it came from and why it matters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.config import TaskSpec

KINDS = ("feature", "tests", "docs", "task")


@dataclass(frozen=True)
class Task:
    """A candidate task; `key` identifies it across runs (claims, dedupe)."""

    key: str
    title: str
    description: str = ""
    kind: str = "task"
    score: float = 0.0  # higher first; explicit tasks 50..90, discovery 0..50
    source: str = "file"  # file | github | unhooked | drift | untested
    evidence: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())

    def to_spec(self) -> TaskSpec:
        """The supervisor's view: title, description (with evidence and files) and kind."""
        parts = [self.description] if self.description else []
        if self.evidence:
            parts.append("Evidence:\n" + "\n".join(f"- {line}" for line in self.evidence))
        if self.files:
            parts.append("Files of interest: " + ", ".join(self.files))
        return TaskSpec(title=self.title, description="\n\n".join(parts), kind=self.kind)

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "kind": self.kind, "score": round(self.score, 2),
                "source": self.source, "description": self.description,
                "evidence": list(self.evidence), "files": list(self.files)}

