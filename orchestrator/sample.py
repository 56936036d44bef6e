"""A small real project used by the demo and the tests: a package, its tests, a bare remote."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

FILES = {
    "README.md": "# inventory\n\nA tiny stock-keeping library.\n",
    "inventory/__init__.py": "",
    "inventory/stock.py": (
        '"""Stock levels."""\n\n'
        "STOCK = {\"apple\": 3, \"pear\": 12, \"plum\": 0}\n\n\n"
        "def low_stock(threshold: int = 5) -> list[str]:\n"
        '    """Items below `threshold`, sorted."""\n'
        "    return sorted(name for name, count in STOCK.items() if count < threshold)\n"
    ),
    "inventory/cli.py": (
        "import sys\n\n\n"
        "def main(argv: list[str] | None = None) -> int:\n"
        "    args = sys.argv[1:] if argv is None else argv\n"
        "    print('usage: inventory COMMAND')\n"
        "    return 0 if not args else 2\n"
    ),
    "tests/test_stock.py": (
        "from inventory.stock import low_stock\n\n\n"
        "def test_low_stock_default():\n"
        "    assert low_stock() == ['apple', 'plum']\n\n\n"
        "def test_low_stock_threshold():\n"
        "    assert low_stock(1) == ['plum']\n"
    ),
}


@dataclass(frozen=True)
class SampleRepo:
    path: Path  # the user's working clone
    remote: Path  # its bare `origin`


def run_git(*args: str, cwd: Path) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(cwd),
           "PATH": "/usr/local/bin:/usr/bin:/bin",
           "GIT_AUTHOR_NAME": "Sample", "GIT_AUTHOR_EMAIL": "sample@example.invalid",
           "GIT_COMMITTER_NAME": "Sample", "GIT_COMMITTER_EMAIL": "sample@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def commit_project(root: Path, name: str, files: dict[str, str], message: str) -> SampleRepo:
    """Create `root/name` with `files` committed on main, and its bare `origin` at `root/<remote>`."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    remote = root / ("remote.git" if name == "app" else f"{name}.git")
    repo = root / name
    run_git("init", "--quiet", "--bare", "--initial-branch=main", str(remote), cwd=root)
    run_git("init", "--quiet", "--initial-branch=main", str(repo), cwd=root)
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    run_git("add", "-A", cwd=repo)
    run_git("commit", "--quiet", "-m", message, cwd=repo)
    run_git("remote", "add", "origin", str(remote), cwd=repo)
    run_git("push", "--quiet", "origin", "main", cwd=repo)
    return SampleRepo(path=repo, remote=remote)


def make_sample_repo(root: Path) -> SampleRepo:
    """Create `root/app` (committed, with pytest tests) and its bare remote `root/remote.git`."""
    return commit_project(root, "app", FILES, "inventory: stock levels and tests")
