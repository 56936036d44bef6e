"""The command line a project offers, read statically from argparse, click and typer code.

A command is named by its path ("images build"); "" is the program itself (a
single-command CLI), whose options count as global.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from orchestrator.tasks.codebase import Codebase, Module, dotted


CLI_LIBRARIES = {"argparse", "click", "typer"}


@dataclass
class Command:
    name: str
    path: str
    lineno: int
    options: set[str] = field(default_factory=set)


@dataclass
class CliSurface:
    commands: dict[str, Command] = field(default_factory=dict)

    @property
    def all_options(self) -> set[str]:
        return {o for c in self.commands.values() for o in c.options}

    def add(self, name: str, path: str, lineno: int, options: set[str]) -> None:
        command = self.commands.setdefault(name, Command(name, path, lineno))
        command.options |= options


def _str_args(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def _kwarg(call: ast.Call, name: str) -> str | None:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return None


def _flags(call: ast.Call) -> set[str]:
    return {s for s in _str_args(call) if s.startswith("--")}


def _param_options(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Typer options from parameters: `x: T = typer.Option(...)`, Annotated[..., Option()] or plain defaults."""
    options: set[str] = set()
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]
    for arg, default in pairs:
        calls = [n for n in ast.walk(ast.Tuple(elts=[x for x in (default, arg.annotation) if x], ctx=ast.Load()))
                 if isinstance(n, ast.Call)]
        kinds = {dotted(c.func).rpartition(".")[2]: c for c in calls}
        if "Argument" in kinds:
            continue
        if "Option" in kinds:
            options |= _flags(kinds["Option"]) or {"--" + arg.arg.replace("_", "-")}
        elif default is not None and not calls:
            options.add("--" + arg.arg.replace("_", "-"))
    return options


def read_cli(code: Codebase) -> CliSurface:
    """Commands and options of every argparse, click or typer CLI in the target modules."""
    surface = CliSurface()
    for module in code.modules.values():
        if not _uses_cli_library(module):
            continue  # most modules: skip the walk
        _typer_and_click(module, surface)
        _argparse(module, surface)
    return surface


def _uses_cli_library(module: Module) -> bool:
    roots = {target.split(".")[0] for target in module.imports.values()}
    return bool(roots & CLI_LIBRARIES) or any(s.split(".")[0] in CLI_LIBRARIES for s in module.star_imports) \
        or any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(module.tree)
               if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in CLI_LIBRARIES
               or isinstance(n, ast.Import) and any(a.name.split(".")[0] in CLI_LIBRARIES for a in n.names))


def _typer_and_click(module: Module, surface: CliSurface) -> None:
    groups: dict[str, str] = {}  # typer app variable -> its group name
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and dotted(node.func).endswith(".add_typer") and node.args:
            sub = dotted(node.args[0])
            groups[sub] = _kwarg(node, "name") or sub
    found: list[tuple[str, str, int, set[str]]] = []
    for stmt in module.tree.body:
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        click_options = {f for d in stmt.decorator_list if isinstance(d, ast.Call)
                         and dotted(d.func).rpartition(".")[2] == "option" for f in _flags(d)}
        for dec in stmt.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            owner, _, verb = dotted(call.func if call else dec).rpartition(".")
            options = click_options | _param_options(stmt)
            if verb in ("callback",) or (verb == "group" and owner in ("click", "")):
                found.append(("", owner, stmt.lineno, options))  # global options
            elif verb in ("command", "group"):
                explicit = (_str_args(call) + [_kwarg(call, "name") or ""])[0] if call else ""
                name = explicit or stmt.name.replace("_", "-")
                prefix = groups.get(owner, "")
                found.append((f"{prefix} {name}".strip(), owner, stmt.lineno, options))
    commands = [f for f in found if f[0]]
    if len(commands) == 1 and not groups and commands[0][1] in ("click", ""):
        commands = [("", *commands[0][1:])]  # a single @click.command: the program itself
    for name, _owner, lineno, options in [*commands, *(f for f in found if not f[0])]:
        surface.add(name, module.path, lineno, options)


def _argparse(module: Module, surface: CliSurface) -> None:
    parsers: dict[str, str] = {}  # variable -> subcommand name
    calls: list[tuple[ast.Call, str]] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if dotted(node.value.func).endswith(".add_parser") and _str_args(node.value):
                for target in node.targets:
                    parsers[dotted(target)] = _str_args(node.value)[0]
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            calls.append((node, name))
    for node, name in calls:
        if name.endswith(".add_parser") and _str_args(node):
            surface.add(_str_args(node)[0], module.path, node.lineno, set())
        elif name.endswith(".add_argument"):
            owner = name.rpartition(".")[0]
            surface.add(parsers.get(owner, ""), module.path, node.lineno, _flags(node))
