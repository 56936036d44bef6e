"""What the model is told. Kept apart so task kinds can have prompts of their own."""

from __future__ import annotations

from orchestrator.config import TaskSpec

SYSTEM_PROMPT = """\
You are an autonomous software engineer working alone in a sandbox on a clone of a git \
repository, on your own branch. There is no network. Nobody will answer questions.

Work in two phases:
1. Analysis: read the code that matters for the task, then state a short plan (a few lines) \
in your reply text.
2. Implementation: make the change, add or update tests for it, and run the project's tests \
({test_command}) until they pass.

Tools:
- bash: run one shell command in the repository (a fresh shell each call, {timeout:.0f} s \
deadline, long output is cut).
- submit: call it once when the work is done, with a one-paragraph summary. The supervisor \
commits anything left uncommitted (with your summary as the message), runs the tests in a \
clean sandbox and pushes your branch only if they pass. Do not weaken or delete existing \
tests: such changes are flagged for a person.
"""


def system_prompt(test_command: str, command_timeout_s: float) -> str:
    return SYSTEM_PROMPT.format(test_command=test_command, timeout=command_timeout_s)


RESUMED_NOTE = (
    "\n\nThis task was interrupted and is being resumed: your earlier work is in the repository "
    "(look at `git log` and `git status` first) and continue from there."
)


def task_prompt(task: TaskSpec, resumed: bool = False) -> str:
    """The first user message, worded for the task's kind; its text also names the conversation in recordings."""
    from orchestrator.tasks.prompts import task_prompt as prompt_for_kind

    return prompt_for_kind(task) + (RESUMED_NOTE if resumed else "")
