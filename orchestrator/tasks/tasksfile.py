"""The tasks file: a person's list of work, in TOML (or YAML when PyYAML is installed).

    [[task]]
    title = "Add a --json flag to status"
    description = "Scripts want machine-readable output."
    kind = "feature"        # feature | tests | docs | task
    priority = 2            # 1 (most urgent) .. 5; default 3
    files = ["orchestrator/cli.py"]
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ConfigError
from orchestrator.tasks.model import Task

FORMAT_HINT = "see docs/tasks.md for the tasks file format"


class TaskEntry(BaseModel):
    """One `[[task]]` entry as written by a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    kind: Literal["feature", "tests", "docs", "task"] = "task"
    priority: int = Field(3, ge=1, le=5)
    files: list[str] = Field(default_factory=list)


class TasksFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: list[TaskEntry] = Field(default_factory=list)


def priority_score(priority: int) -> float:
    """Explicit tasks outrank discovery: priority 1 scores 90, priority 5 scores 50."""
    return 100.0 - 10.0 * priority


def load_tasks_file(path: Path) -> list[Task]:
    """Read and validate a tasks file; ConfigError names the file and the field at fault."""
    data = _parse(path)
    try:
        parsed = TasksFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{path}: {problems}", hint=FORMAT_HINT) from exc
    return [
        Task(key=f"file:{entry.title.strip().lower()}", title=entry.title.strip(),
             description=entry.description.strip(), kind=entry.kind,
             score=priority_score(entry.priority), source="file",
             evidence=(f"listed in {path.name} with priority {entry.priority}",),
             files=tuple(entry.files))
        for entry in parsed.task
    ]


def _parse(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"tasks file {path} not found", hint="pass --tasks-file PATH of a .toml file")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError as exc:
            raise ConfigError(f"{path}: YAML needs PyYAML, which is not installed",
                              hint="write the tasks file in TOML instead") from exc
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}", hint=FORMAT_HINT) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint=FORMAT_HINT) from exc


def _describe(err: Any) -> str:
    loc = list(err["loc"])
    where = f"task {loc[1] + 1}" if len(loc) >= 2 and loc[0] == "task" and isinstance(loc[1], int) else ""
    field = ".".join(str(p) for p in loc[2:]) if where else ".".join(str(p) for p in loc)
    return f"{where + ' ' if where else ''}field {field or '(top)'!r}: {err['msg']}"
