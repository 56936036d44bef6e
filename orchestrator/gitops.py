"""Host-side git, only ever on repositories the supervisor trusts.

Two kinds of repository are touched here: the user's own repository (read:
HEAD, cleanliness, the origin URL) and a host-owned bare *run repository* under
the state dir, which sandboxes clone from (mounted read-only) and into which the
agent's work is imported from a verified bundle. Git never runs inside a
repository an agent wrote, so its hooks, config and attributes cannot execute
on the host.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import PreflightError, PushError

# Applied to every git call on the run repository: nothing configurable by
# repository content can run, and objects arriving from a bundle are checked.
_HARDENED = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "transfer.fsckObjects=true",
    "-c", "fetch.fsckObjects=true",
    "-c", "protocol.ext.allow=never",
    "-c", "protocol.file.allow=always",
    # No automatic repack: sandboxes copy the run repository's packs while it is being fetched into.
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
)


def _isolated_env() -> dict[str, str]:
    """Environment for git on untrusted input: no system or global config, no prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


def git(*args: str, cwd: Path | None = None, isolated: bool = True, check: bool = True) -> str:
    """Run git with hardened settings and return its stdout; PushError on failure when `check`."""
    env = _isolated_env() if isolated else {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(
        ["git", *_HARDENED, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )
    if check and proc.returncode != 0:
        raise PushError(
            f"git {' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}",
            hint="see the run's events for details",
        )
    return proc.stdout.strip()


@dataclass(frozen=True)
class UserRepo:
    """The user's repository as the run found it."""

    path: Path
    head: str
    branch: str
    remote_url: str


def inspect_user_repo(path: Path, state_dir_name: str = ".fresh", require_clean: bool = True) -> UserRepo:
    """Check the repository a run targets: a git work tree, committed, with an `origin` remote."""
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise PreflightError(f"{path} is not a directory", hint="pass --repo PATH of a git repository")
    top = git("rev-parse", "--show-toplevel", cwd=path, isolated=False, check=False)
    if not top:
        raise PreflightError(f"{path} is not a git repository", hint="run `git init` there or pass another --repo")
    root = Path(top)
    head = git("rev-parse", "--verify", "-q", "HEAD", cwd=root, isolated=False, check=False)
    if not head:
        raise PreflightError(f"{root} has no commits yet", hint="commit something first")
    status = git("status", "--porcelain", "--untracked-files=all", cwd=root, isolated=False)
    dirty = [
        line[3:] for line in status.splitlines()
        if line and not line[3:].startswith(f"{state_dir_name}/")
    ]
    if dirty and require_clean:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise PreflightError(
            f"{root} has uncommitted changes ({shown})",
            hint="commit or stash them: agents start from the last commit and would not see them",
        )
    # The URL as configured (not rewritten by url.*.insteadOf): forge detection needs the real host.
    remote = git("config", "--get", "remote.origin.url", cwd=root, isolated=False, check=False)
    if not remote:
        raise PreflightError(
            f"{root} has no 'origin' remote", hint="add one: git remote add origin URL"
        )
    branch = git("symbolic-ref", "--short", "-q", "HEAD", cwd=root, isolated=False, check=False)
    return UserRepo(path=root, head=head, branch=branch or "HEAD", remote_url=remote)


def create_run_repo(user: UserRepo, target: Path) -> Path:
    """Make the host-owned bare repository that sandboxes clone from (read-only mount)."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    git("clone", "--bare", "--no-local", "--quiet", str(user.path), str(target), isolated=False)
    # Make the repository readable by the sandbox user (uid 1000) without owning it.
    for root, dirs, files in os.walk(target):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return target


def import_bundle(run_repo: Path, bundle: bytes, branch: str, base_commit: str) -> str:
    """Verify a bundle from a sandbox and fetch only `branch` from it; returns the new tip.

    The tip must descend from `base_commit`: an agent that rewrote history or
    moved its branch elsewhere gets nothing imported.
    """
    with tempfile.TemporaryDirectory(prefix="fresh-bundle-") as tmp:
        path = Path(tmp) / "work.bundle"
        path.write_bytes(bundle)
        git("bundle", "verify", "--quiet", str(path), cwd=run_repo)
        heads = git("bundle", "list-heads", str(path), f"refs/heads/{branch}", cwd=run_repo)
        if not heads:
            raise PushError(f"the bundle holds no branch {branch}", hint="the agent may have renamed its branch")
        staging = f"refs/fresh-import/{branch}"
        git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(path),
            f"+refs/heads/{branch}:{staging}", cwd=run_repo)
    tip = git("rev-parse", "--verify", staging, cwd=run_repo)
    ancestor = subprocess.run(
        ["git", *_HARDENED, "merge-base", "--is-ancestor", base_commit, tip],
        cwd=run_repo, env=_isolated_env(), capture_output=True, check=False,
    )
    git("update-ref", "-d", staging, cwd=run_repo)
    if ancestor.returncode != 0:
        raise PushError(
            f"branch {branch} does not start from the run's base commit {base_commit[:12]}",
            hint="the agent rewrote history; its work is kept in the sandbox only",
        )
    git("update-ref", f"refs/heads/{branch}", tip, cwd=run_repo)
    return tip


def changed_files(run_repo: Path, base: str, tip: str) -> list[tuple[str, str]]:
    """(status, path) of every file the commits base..tip change."""
    out = git("diff", "--name-status", "--no-renames", "-z", base, tip, cwd=run_repo)
    parts = [p for p in out.split("\0") if p]
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]


def diff_stat(run_repo: Path, base: str, tip: str) -> str:
    """`git diff --stat` of the agent's work, computed in the run repository."""
    return git("diff", "--stat", base, tip, cwd=run_repo)


def push_branch(run_repo: Path, remote_url: str, branch: str) -> None:
    """Push one branch from the run repository to the user's remote (idempotent)."""
    # The user's own git config applies here (credentials, ssh); the run repo holds no hooks.
    git("push", "--quiet", remote_url, f"refs/heads/{branch}:refs/heads/{branch}",
        cwd=run_repo, isolated=False)


def remote_has_branch(remote_url: str, branch: str) -> bool:
    """Whether the remote already has `branch` (for idempotent retries)."""
    out = git("ls-remote", "--heads", remote_url, f"refs/heads/{branch}", isolated=False, check=False)
    return bool(out.strip())


# -- refusals: what no imported commit may add, read from objects, never from a checkout ----------
_NULL_SHA = "0" * 40
_SYMLINK, _GITLINK = "120000", "160000"


@dataclass(frozen=True)
class _Entry:
    """One line of `git diff-tree --raw`: a path's new mode and blob in one commit."""

    commit: str
    mode: str
    sha: str
    status: str
    path: str


def _raw_entries(run_repo: Path, commit: str) -> list[_Entry]:
    """Every path a commit changes against each of its parents (merges included)."""
    out = git("diff-tree", "-r", "-z", "-m", "--root", "--no-renames", "--no-abbrev", "--no-commit-id",
              commit, cwd=run_repo)
    parts, entries, i = out.split("\0"), [], 0
    while i < len(parts) - 1:
        meta = parts[i]
        if meta.startswith(":"):
            _, new_mode, _, new_sha, status = meta[1:].split(" ")
            entries.append(_Entry(commit, new_mode, new_sha, status[:1], parts[i + 1]))
            i += 2
        else:
            i += 1  # a commit id between the diffs of a merge's parents
    return entries


def _blob_sizes(run_repo: Path, shas: set[str]) -> dict[str, int]:
    if not shas:
        return {}
    proc = subprocess.run(["git", *_HARDENED, "cat-file", "--batch-check=%(objectname) %(objectsize)"],
                          cwd=run_repo, env=_isolated_env(), input="\n".join(sorted(shas)) + "\n",
                          capture_output=True, text=True, check=True)
    return {sha: int(size) for sha, size in (line.split() for line in proc.stdout.splitlines())}


def _escapes_repo(link_path: str, target: str) -> bool:
    """Whether a symlink at `link_path` pointing at `target` leaves the repository (or enters .git)."""
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    return resolved == ".." or resolved.startswith("../") or resolved.split("/")[0] == ".git"


def find_refusals(run_repo: Path, base: str, tip: str, max_file_bytes: int) -> list[str]:
    """Why the commits base..tip may not leave: outside symlinks, gitlinks, .gitmodules, huge files.

    Every commit is read (a huge file added then deleted would still be pushed);
    only objects in the host-owned run repository are read, nothing is checked out.
    """
    entries = [e for c in git("rev-list", f"{base}..{tip}", cwd=run_repo).split()
               for e in _raw_entries(run_repo, c)]
    reasons: list[str] = []
    for e in entries:
        if posixpath.basename(e.path) == ".gitmodules":
            reasons.append(f"{e.path}: .gitmodules changed in {e.commit[:12]} (submodules are not accepted)")
        elif e.mode == _GITLINK:
            reasons.append(f"{e.path}: gitlink (submodule) added in {e.commit[:12]}")
        elif e.mode == _SYMLINK:
            target = git("cat-file", "blob", e.sha, cwd=run_repo)
            if _escapes_repo(e.path, target):
                reasons.append(f"{e.path}: symlink to {target!r} points outside the repository")
    sizes = _blob_sizes(run_repo, {e.sha for e in entries if e.sha != _NULL_SHA and e.mode.startswith("100")})
    for e in entries:
        size = sizes.get(e.sha, 0)
        if e.sha != _NULL_SHA and size > max_file_bytes:
            reasons.append(f"{e.path}: {size} bytes in {e.commit[:12]}, over the limit of {max_file_bytes}")
    return list(dict.fromkeys(reasons))  # the same blob in several commits is said once
