from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.tasks.tasksfile import load_tasks_file


def write(tmp_path: Path, text: str, name: str = "tasks.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_entries_become_tasks_ranked_by_priority(tmp_path: Path) -> None:
    path = write(tmp_path, '''
[[task]]
title = "Add --json to status"
description = "Scripts want it."
kind = "feature"
priority = 1
files = ["app/cli.py"]

[[task]]
title = "Tidy the README"
kind = "docs"
''')
    first, second = load_tasks_file(path)
    assert (first.title, first.kind, first.files) == ("Add --json to status", "feature", ("app/cli.py",))
    assert first.score > second.score
    spec = first.to_spec()
    assert spec.kind == "feature" and "Scripts want it." in spec.description and "app/cli.py" in spec.description


@pytest.mark.parametrize("text, field", [
    ('[[task]]\ntitle = "x"\nkind = "refactor"\n', "kind"),
    ('[[task]]\ntitle = "x"\npriority = 9\n', "priority"),
    ('[[task]]\ntitle = "x"\nowner = "me"\n', "owner"),
    ('[[task]]\ndescription = "no title"\n', "title"),
    ('[[tasks]]\ntitle = "x"\n', "tasks"),
])
def test_bad_entries_name_the_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_tasks_file(path)
    assert str(path) in err.value.message and repr(field) in err.value.message
    assert "docs/tasks.md" in err.value.hint


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_tasks_file(write(tmp_path, "[[task]\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_tasks_file(tmp_path / "nope.toml")


def test_yaml_tasks_file(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = write(tmp_path, "task:\n  - title: Write tests for stock\n    kind: tests\n", name="tasks.yaml")
    (task,) = load_tasks_file(path)
    assert task.kind == "tests" and task.source == "file"
