"""Docs drift: commands and options the docs do not mention, and documented ones that are gone.

"Mentioned" means the command's words appear in code (fenced blocks, inline
code, indented blocks) or headings of README/docs; options count when their
`--flag` appears anywhere. Documented invocations (`<script> word --flag`)
are checked against the real command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.tasks.cli_surface import CliSurface
from orchestrator.tasks.model import Task

DOC_SUFFIXES = (".md", ".rst", ".txt")
ALWAYS_OPTIONS = {"--help", "--version", "--install-completion", "--show-completion"}
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE = re.compile(r"`+([^`\n]+)`+")


@dataclass(frozen=True)
class Doc:
    path: str
    text: str
    code: str  # the parts where commands are named: code and headings


def read_docs(root: Path) -> list[Doc]:
    """README* at the top and everything under docs/ (md, rst, txt)."""
    paths = sorted(p for p in root.glob("README*") if p.suffix.lower() in (*DOC_SUFFIXES, ""))
    docs_dir = root / "docs"
    if docs_dir.is_dir():
        paths += sorted(p for p in docs_dir.rglob("*") if p.suffix.lower() in DOC_SUFFIXES)
    out = []
    for path in paths:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            out.append(Doc(path.relative_to(root).as_posix(), text, _code_parts(text, path.suffix)))
    return out


def _code_parts(text: str, suffix: str) -> str:
    if suffix.lower() == ".rst":
        return text
    parts = [m.group(0) for m in _FENCE.finditer(text)]
    parts += _INLINE.findall(text)
    parts += [line for line in text.splitlines() if line.startswith(("    ", "\t", "#"))]
    return "\n".join(parts)


def _words(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + r"\s+".join(map(re.escape, name.split())) + r"(?![\w-])")


def _flag(option: str) -> re.Pattern[str]:
    return re.compile(re.escape(option) + r"(?![\w-])")


def find_drift(cli: CliSurface, docs: list[Doc], scripts: list[str]) -> list[Task]:
    """Tasks for undocumented commands and options, and for documented ones that no longer exist."""
    if not cli.commands:
        return []
    code = "\n".join(d.code for d in docs)
    text = "\n".join(d.text for d in docs)
    tasks: list[Task] = []
    for name, command in sorted(cli.commands.items()):
        missing = sorted(o for o in command.options - ALWAYS_OPTIONS if not _flag(o).search(text))
        where = f"{command.path}:{command.lineno}"
        if name and not _words(name).search(code):
            evidence = [f"{where} defines the command `{name}`; no README/docs file names it"]
            if missing:
                evidence.append("its options: " + ", ".join(missing))
            tasks.append(Task(key=f"drift:undocumented:{name}", title=f"Document the {name} command",
                              description=f"`{name}` exists in the CLI but the docs never mention it. "
                                          "Describe what it does and its options in README or docs/.",
                              kind="docs", score=25.0 + min(len(missing), 5), source="drift",
                              evidence=tuple(evidence), files=(command.path,)))
        elif missing:
            label = f"the {name} command" if name else "the command line"
            tasks.append(Task(key=f"drift:options:{name or '(global)'}",
                              title=f"Document the options of {label}: {', '.join(missing[:4])}",
                              description=f"Options of {label} that no README/docs file mentions.",
                              kind="docs", score=15.0 + min(len(missing), 5), source="drift",
                              evidence=(f"{where}: undocumented " + ", ".join(missing),),
                              files=(command.path,)))
    tasks += _stale(cli, docs, scripts)
    return tasks


def _code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, code on it): whole lines in fenced or indented blocks, else inline code spans."""
    out: list[tuple[int, str]] = []
    fenced = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or line.startswith(("    ", "\t")):
            out.append((lineno, line))
        else:
            out.extend((lineno, span) for span in _INLINE.findall(line))
    return out


def _stale(cli: CliSurface, docs: list[Doc], scripts: list[str]) -> list[Task]:
    """Documented `<script> word` and `--flag` uses that the CLI does not have."""
    known_words = {part for name in cli.commands for part in name.split()}
    has_subcommands = any(cli.commands)
    options = cli.all_options | ALWAYS_OPTIONS
    stale: dict[str, list[str]] = {}
    for doc in docs:
        for lineno, line in _code_lines(doc.text):
            for script in scripts:
                for match in re.finditer(r"(?:^|[\s`$(])" + re.escape(script) + r"((?:[ \t]+[^\s`|;&)]+)*)", line):
                    args = match.group(1).split()
                    where = f"{doc.path}:{lineno}"
                    if has_subcommands and args and re.fullmatch(r"[a-z][\w-]*", args[0]) \
                            and args[0] not in known_words:
                        stale.setdefault(f"command:{args[0]}", []).append(where)
                    for arg in args:
                        flag = arg.split("=")[0]
                        if re.fullmatch(r"--[a-z][\w-]*", flag) and flag not in options:
                            stale.setdefault(f"option:{flag}", []).append(where)
    tasks = []
    for key, places in sorted(stale.items()):
        kind, _, name = key.partition(":")
        tasks.append(Task(key=f"drift:stale-{kind}:{name}",
                          title=f"Fix docs that use the {kind} {name}, which no longer exists",
                          description=f"The docs show `{name}`, but the command line has no such {kind}. "
                                      "Update or remove those passages.",
                          kind="docs", score=30.0 + min(len(places), 5), source="drift",
                          evidence=tuple(f"{p} uses {name}" for p in places[:5]),
                          files=tuple(sorted({p.rsplit(':', 1)[0] for p in places}))))
    return tasks
