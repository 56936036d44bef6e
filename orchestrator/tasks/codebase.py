"""A static index of a Python project: modules, top-level symbols, what each one refers to.

Built with `ast` only: the target's code is parsed, never imported or run.
Name resolution follows imports (absolute, relative, aliased, lazy imports
inside functions, re-exports through packages, star imports), which is good
enough for typical code; dynamic lookups (getattr, strings) are not followed.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules", "site-packages", "venv", "env", ".fresh"}
NON_TARGET_FILES = {"setup.py", "noxfile.py", "conftest.py", "fabfile.py"}


@dataclass
class Symbol:
    """A top-level function or class of a target module."""

    qualname: str
    module: str
    name: str
    kind: str  # "function" | "class"
    path: str  # relative to the project root
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    refs: set[str] = field(default_factory=set)  # resolved qualnames (symbols and modules)

    @property
    def public(self) -> bool:
        return not self.name.startswith("_")

    @property
    def docstring(self) -> str:
        return ast.get_docstring(self.node) or ""

    @property
    def lines(self) -> int:
        return (self.node.end_lineno or self.node.lineno) - self.node.lineno + 1

    @property
    def decorators(self) -> list[str]:
        return [dotted(d.func if isinstance(d, ast.Call) else d) for d in self.node.decorator_list]


@dataclass
class Module:
    name: str
    path: str
    tree: ast.Module
    is_package: bool
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualname
    star_imports: list[str] = field(default_factory=list)
    defs: dict[str, Symbol] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)  # what module-level code refers to (incl. imports)
    runs_as_main: bool = False


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, '' for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def is_test_path(rel: str) -> bool:
    parts = Path(rel).parts
    name = parts[-1]
    return (any(p in ("tests", "test", "testing") for p in parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


class Codebase:
    """Every Python file under `root`, split into target modules and test files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, Module] = {}
        self.test_names: set[str] = set()  # every name a test file mentions
        self.errors: list[str] = []  # files that did not parse
        self._load()
        for module in self.modules.values():
            self._index(module)
        for module in self.modules.values():
            self._resolve_module(module)

    # -- loading ---------------------------------------------------------------
    def _files(self) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                                 and not d.endswith(".egg-info"))
            found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
        return found

    def _load(self) -> None:
        files = self._files()
        in_package = any((f.parent / "__init__.py").exists() for f in files)
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=rel)
            except (SyntaxError, ValueError) as exc:
                self.errors.append(f"{rel}: {exc}")
                continue
            if is_test_path(rel):
                self.test_names |= _names_in(tree)
                continue
            name = _module_name(path)
            if name is None or (in_package and "." not in name and path.name != "__init__.py"
                                and not (path.parent / "__init__.py").exists()):
                continue  # a loose script next to the package: not part of the target
            if path.name in NON_TARGET_FILES:
                continue
            self.modules[name] = Module(name, rel, tree, is_package=path.name == "__init__.py")

    # -- indexing --------------------------------------------------------------
    def _index(self, module: Module) -> None:
        for stmt in module.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kind = "class" if isinstance(stmt, ast.ClassDef) else "function"
                module.defs[stmt.name] = Symbol(f"{module.name}.{stmt.name}", module.name, stmt.name,
                                                kind, module.path, stmt)
        module.imports = self._imports_of(module, module.tree.body, top_level=True)
        module.runs_as_main = module.name.endswith("__main__") or any(_is_main_guard(s) for s in module.tree.body)

    def _imports_of(self, module: Module, body: list[ast.stmt], top_level: bool) -> dict[str, str]:
        """Local name -> qualname for the import statements in `body` (walked, for functions)."""
        table: dict[str, str] = {}
        nodes = ast.walk(ast.Module(body=body, type_ignores=[])) if not top_level else iter(_shallow(body))
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        table[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        table[head] = head
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node.module, node.level)
                for alias in node.names:
                    if alias.name == "*":
                        if top_level:
                            module.star_imports.append(base)
                        continue
                    table[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
        return table

    @staticmethod
    def _absolute(module: Module, name: str | None, level: int) -> str:
        if level == 0:
            return name or ""
        parts = module.name.split(".")
        package = parts if module.is_package else parts[:-1]
        base = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join([*base, *([name] if name else [])])

    def _resolve_module(self, module: Module) -> None:
        top: list[ast.AST] = []
        for stmt in module.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.extend(stmt.decorator_list)
            else:
                top.append(stmt)
        module.refs = self._refs(module, top, {})
        for target in module.imports.values():
            resolved = self.canonical(target)
            if resolved:
                module.refs.add(self.module_of(resolved))
        for symbol in module.defs.values():
            local = self._imports_of(module, [symbol.node], top_level=False)
            symbol.refs = self._refs(module, [symbol.node], local)
            for target in local.values():
                resolved = self.canonical(target)
                if resolved:
                    symbol.refs.add(self.module_of(resolved))
            symbol.refs.discard(symbol.qualname)

    def _refs(self, module: Module, nodes: Sequence[ast.AST], local: dict[str, str]) -> set[str]:
        found: set[str] = set()
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
                    name = dotted(node)
                    if name:
                        resolved = self.resolve(module, name, local)
                        if resolved:
                            found.add(resolved)
        return found

    # -- name resolution -------------------------------------------------------
    def resolve(self, module: Module, name: str, local: dict[str, str] | None = None) -> str | None:
        """The qualname a dotted name used in `module` refers to, if it is in the target."""
        head, _, rest = name.partition(".")
        if local and head in local:
            base = local[head]
        elif head in module.defs:
            base = f"{module.name}.{head}"
        elif head in module.imports:
            base = module.imports[head]
        else:
            for star in module.star_imports:
                target = self.modules.get(star)
                if target and head in target.defs:
                    return f"{star}.{head}"
            return None
        return self.canonical(f"{base}.{rest}" if rest else base)

    def canonical(self, qualname: str, depth: int = 0) -> str | None:
        """Follow re-exports to the module or top-level symbol `qualname` names."""
        parts = qualname.split(".")
        for i in range(len(parts), 0, -1):
            modname = ".".join(parts[:i])
            module = self.modules.get(modname)
            if module is None:
                continue
            if i == len(parts):
                return modname
            head = parts[i]
            if head in module.defs:
                return f"{modname}.{head}"
            if head in module.imports and depth < 20:
                rest = ".".join(parts[i + 1:])
                target = module.imports[head]
                return self.canonical(f"{target}.{rest}" if rest else target, depth + 1)
            return None
        return None

    def module_of(self, qualname: str) -> str:
        return qualname if qualname in self.modules else qualname.rpartition(".")[0]

    def symbol(self, qualname: str) -> Symbol | None:
        module = self.modules.get(qualname.rpartition(".")[0])
        return module.defs.get(qualname.rpartition(".")[2]) if module else None

    def symbols(self) -> list[Symbol]:
        return [s for m in self.modules.values() for s in m.defs.values()]


def _module_name(path: Path) -> str | None:
    parts = [path.stem] if path.name != "__init__.py" else []
    parent = path.parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    name = ".".join(parts)
    return name if name and all(p.isidentifier() for p in parts) else None


def _shallow(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements, looking into if/try blocks (guarded imports) but not defs."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, (ast.If, ast.Try)):
            inner = [*stmt.body, *stmt.orelse, *getattr(stmt, "finalbody", [])]
            for handler in getattr(stmt, "handlers", []):
                inner.extend(handler.body)
            out.extend(_shallow(inner))
    return out


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    names = {dotted(stmt.test.left), *(dotted(c) for c in stmt.test.comparators)}
    return "__name__" in names


def _names_in(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[-1])
            names.add(node.name.split(".")[-1])
    return names
