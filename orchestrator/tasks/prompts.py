"""What an agent is told, per task kind. Every prompt asks for the analysis plan first.

The plan the agent states in its first reply is recorded as an event before
any change is made (the agent loop logs the first reply's text).
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.tasks.model import Task

PLAN_FIRST = ("Start with the analysis: read the code that matters, then state a short plan (a few lines: "
              "what you will change, which tests you will add, how you will check it) before changing anything.")

GUIDANCE = {
    "feature": ("This feature exists in the code but users cannot reach it from the command line. Wire it "
                "into the CLI in the style of the existing commands (names, options, help text, errors), add "
                "tests that go through the command, and mention the command in README or docs."),
    "tests": ("Write tests for the code named below. Test behaviour through the public functions: normal "
              "cases, edge cases and errors. Do not change the code under test unless a test reveals a real "
              "bug; then fix it and say so in your summary. Do not touch other tests."),
    "docs": ("Bring the documentation in line with the command line as it is now: the code is the truth. "
             "Check each command and option against the code (its help text and behaviour) before writing; "
             "remove what no longer exists. Keep the existing style of the docs."),
    "task": "Do what the task asks, with tests for any behaviour you change.",
}


class _TaskLike(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def kind(self) -> str: ...


def task_prompt(task: Task | _TaskLike) -> str:
    """The first user message for `task` (a Task, or the supervisor's TaskSpec)."""
    parts = [f"Task ({task.kind}): {task.title}", GUIDANCE.get(task.kind, GUIDANCE["task"])]
    if isinstance(task, Task):
        parts.append(task.to_spec().description)
    elif task.description:
        parts.append(task.description)
    parts.append(PLAN_FIRST)
    return "\n\n".join(p for p in parts if p)
