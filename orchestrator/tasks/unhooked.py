"""Unhooked features: public code that no command-line entry point reaches.

Entry points are console scripts from pyproject, functions decorated as
click/typer commands, and modules that run as `__main__`. From them a
reachability walk over the static reference graph (see codebase.py) marks
what the CLI can get to; the public top-level functions and classes left over
are candidates, ranked by how useful they look.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from orchestrator.tasks.codebase import Codebase, Symbol
from orchestrator.tasks.model import Task

COMMAND_DECORATORS = {"command", "group", "callback", "result_callback"}
NOT_FEATURES = ("Error", "Exception", "Warning", "Protocol", "TypedDict", "NamedTuple")


@dataclass(frozen=True)
class EntryPoints:
    """Where the command line enters the package."""

    scripts: dict[str, str]  # script name -> qualname (or module)
    roots: frozenset[str]  # qualnames and module names the walk starts from


def read_scripts(root: Path) -> dict[str, str]:
    """Console scripts declared in pyproject.toml: name -> 'module:attr' as written."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        return {}
    project = data.get("project", {})
    poetry = data.get("tool", {}).get("poetry", {})
    scripts: dict[str, str] = {}
    for table in (project.get("scripts", {}), project.get("gui-scripts", {}), poetry.get("scripts", {})):
        if isinstance(table, dict):
            scripts.update({str(k): str(v) for k, v in table.items() if isinstance(v, str)})
    return scripts


def find_entry_points(code: Codebase, scripts: dict[str, str]) -> EntryPoints:
    """Roots of the walk: declared scripts, command-decorated functions, `__main__` modules."""
    roots: set[str] = set()
    resolved: dict[str, str] = {}
    for name, spec in scripts.items():
        module, _, attr = spec.partition(":")
        # `mod:app` where app is a variable (a typer/click object): the module's top level is the root
        target = code.canonical(f"{module.strip()}.{attr.strip()}") or code.canonical(module.strip())
        if target:
            resolved[name] = target
            roots.add(target)
            roots.add(code.module_of(target))
    for mod in code.modules.values():
        if mod.runs_as_main:
            roots.add(mod.name)
    for symbol in code.symbols():
        if any(d.rpartition(".")[2] in COMMAND_DECORATORS for d in symbol.decorators):
            roots.add(symbol.qualname)
    return EntryPoints(resolved, frozenset(roots))


def reachable(code: Codebase, roots: Iterable[str]) -> set[str]:
    """Every symbol and module reached from `roots`; reaching a symbol runs its module's top level."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        module = code.modules.get(name)
        if module is not None:
            todo.extend(module.refs)
            if "." in name:
                todo.append(name.rpartition(".")[0])  # importing a submodule runs its package
            continue
        symbol = code.symbol(name)
        if symbol is not None:
            todo.extend(symbol.refs)
            todo.append(symbol.module)
    return seen


def is_feature(symbol: Symbol) -> bool:
    """Public functions and classes, minus exceptions, protocols and typed records."""
    if not symbol.public or symbol.name.isupper():
        return False
    if symbol.kind == "class":
        node = symbol.node
        bases = [getattr(b, "id", getattr(b, "attr", "")) for b in getattr(node, "bases", [])]
        if any(b.endswith(NOT_FEATURES) for b in [*bases, symbol.name]):
            return False
    return True


def find_unhooked(code: Codebase, entry: EntryPoints) -> list[Task]:
    """Tasks for the tops of unreached public code; helpers only they use are folded in as evidence."""
    if not entry.roots:
        return []  # a library without a command line: nothing is "unhooked"
    reached = reachable(code, entry.roots)
    unreached = {s.qualname: s for s in code.symbols() if s.qualname not in reached}
    callers = _callers(code)
    used_by_unreached = {r for s in unreached.values() for r in s.refs if r in unreached and r != s.qualname}
    tops = [s for q, s in unreached.items() if q not in used_by_unreached]
    covered = reachable(code, [t.qualname for t in tops])
    tops += [s for q, s in unreached.items() if q not in covered]  # unreached cycles
    return [_task(code, s, callers, unreached) for s in tops if is_feature(s)]


def _callers(code: Codebase) -> dict[str, int]:
    counts: dict[str, int] = {}
    for symbol in code.symbols():
        for ref in symbol.refs:
            counts[ref] = counts.get(ref, 0) + 1
    return counts


def _task(code: Codebase, symbol: Symbol, callers: dict[str, int], unreached: dict[str, Symbol]) -> Task:
    helpers = sorted(r.rpartition(".")[2] for r in symbol.refs if r in unreached)
    tested = symbol.name in code.test_names
    doc = symbol.docstring.strip().splitlines()[0] if symbol.docstring.strip() else ""
    score = (10.0 + (8.0 if doc else 0.0) + min(symbol.lines, 60) / 6.0
             + 3.0 * min(callers.get(symbol.qualname, 0), 3) + (8.0 if tested else 0.0)
             + (2.0 if symbol.kind == "function" else 0.0))
    evidence = [f"{symbol.path}:{symbol.node.lineno} defines {symbol.kind} {symbol.name} "
                f"({symbol.lines} lines) that no command-line entry point reaches"]
    if doc:
        evidence.append(f"docstring: {doc}")
    if tested:
        evidence.append("tests already use it")
    if helpers:
        evidence.append("unreached code it uses: " + ", ".join(helpers))
    return Task(
        key=f"unhooked:{symbol.qualname}",
        title=f"Expose {symbol.name} on the command line",
        description=(f"`{symbol.qualname}` is implemented but no CLI command reaches it. Add a command "
                     f"or option that uses it, with tests and a line in the docs."),
        kind="feature", score=min(score, 50.0), source="unhooked",
        evidence=tuple(evidence), files=(symbol.path,),
    )
