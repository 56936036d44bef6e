"""Task sources and discovery: where agents' work comes from.

Sources: a tasks file, GitHub issues with a label, and discovery by static
analysis on the host (unhooked features, docs drift) or by running the tests
with line tracing inside a sandbox (untested code). `collect_tasks` merges and
ranks them; `claims` makes sure no task is handed out twice.
"""

from __future__ import annotations

from orchestrator.tasks.model import KINDS, Task

__all__ = ["KINDS", "Task"]
