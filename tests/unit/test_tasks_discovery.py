"""Static discovery on a project built for the test: each planted gap is found, and nothing else."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.tasks.cli_surface import read_cli
from orchestrator.tasks.codebase import Codebase
from orchestrator.tasks.drift import find_drift, read_docs
from orchestrator.tasks.sample import make_shop_repo
from orchestrator.tasks.unhooked import find_entry_points, find_unhooked, read_scripts


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_shop_repo(tmp_path)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def unhooked(root: Path) -> dict[str, tuple[str, ...]]:
    code = Codebase(root)
    return {t.key: t.evidence for t in find_unhooked(code, find_entry_points(code, read_scripts(root)))}


def test_shop_unhooked_is_export_csv_only(shop: Path) -> None:
    found = unhooked(shop)
    assert list(found) == ["unhooked:shop.inventory.export_csv"]
    evidence = " | ".join(found["unhooked:shop.inventory.export_csv"])
    assert "docstring" in evidence and "tests already use it" in evidence and "format_header" in evidence


def test_shop_drift_is_the_planted_three(shop: Path) -> None:
    code = Codebase(shop)
    tasks = find_drift(read_cli(code), read_docs(shop), list(read_scripts(shop)))
    assert sorted(t.key for t in tasks) == [
        "drift:options:add", "drift:stale-command:remove", "drift:undocumented:report"]
    assert all(t.kind == "docs" for t in tasks)


def test_reachability_follows_relative_lazy_and_reexported_imports(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "pyproject.toml": '[project.scripts]\ntool = "pkg.__main__:run"\n',
        "pkg/__init__.py": "from .core import build\n",
        "pkg/core.py": "def build():\n    return 1\n\ndef orphan():\n    return 2\n",
        "pkg/extra.py": "def lazy_target():\n    return 3\n\ndef table_target():\n    return 4\n",
        "pkg/__main__.py": """\
            import pkg
            from . import extra as ex

            COMMANDS = {"t": ex.table_target}

            def run():
                from pkg.extra import lazy_target
                return pkg.build() + lazy_target()
            """,
    })
    assert list(unhooked(root)) == ["unhooked:pkg.core.orphan"]


def test_click_and_typer_commands_are_entry_points_and_cli_surface(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "app/__init__.py": "",
        "app/cli.py": """\
            import click
            import typer

            tapp = typer.Typer()
            sub = typer.Typer()
            tapp.add_typer(sub, name="images")

            @click.group()
            @click.option("--debug")
            def cli():
                pass

            @cli.command("sync")
            @click.option("--dry-run", is_flag=True)
            def sync_cmd(dry_run):
                from app.work import sync
                sync()

            @sub.command()
            def build_all(force: bool = False, tag: str = typer.Option("x", "--tag", "-t"),
                          path: str = typer.Argument(".")):
                pass
            """,
        "app/work.py": "def sync():\n    pass\n\ndef unused_feature():\n    '''Does a thing.'''\n",
        "app/errors.py": "class AppError(Exception):\n    pass\n",
        "app/_private.py": "def _hidden():\n    pass\n",
    })
    assert list(unhooked(root)) == ["unhooked:app.work.unused_feature"]
    cli = read_cli(Codebase(root))
    assert {n: sorted(c.options) for n, c in cli.commands.items()} == {
        "": ["--debug"], "sync": ["--dry-run"], "images build-all": ["--force", "--tag"]}


def test_library_without_cli_has_no_unhooked_tasks(tmp_path: Path) -> None:
    root = write(tmp_path, {"lib/__init__.py": "", "lib/api.py": "def public():\n    pass\n"})
    assert unhooked(root) == {}


def test_syntax_errors_are_recorded_not_raised(tmp_path: Path) -> None:
    root = write(tmp_path, {"pkg/__init__.py": "", "pkg/bad.py": "def (:\n"})
    assert Codebase(root).errors and "pkg/bad.py" in Codebase(root).errors[0]
