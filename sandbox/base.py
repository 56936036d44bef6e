"""What a sandbox is, independent of the backend that provides it.

A *backend* starts and stops sandboxes (Docker today; another runtime or a
cluster later). A *sandbox* runs commands and moves files. The host side only
ever speaks to these protocols.

SandboxError               root; carries a `hint` for the user
 ├── BackendUnavailable    no daemon answers, or the runtime is missing
 ├── ImageMissing          the agent image has not been built
 └── SandboxGone           the sandbox died or was removed under us
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Collection, Mapping, Protocol, Sequence

LABEL_PREFIX = "fresh-sandbox"
LABEL_RUN = f"{LABEL_PREFIX}.run"
LABEL_AGENT = f"{LABEL_PREFIX}.agent"
LABEL_ROLE = f"{LABEL_PREFIX}.role"  # "agent" or "gate"

WORKSPACE = PurePosixPath("/workspace")
REPO_DIR = WORKSPACE / "repo"
ORIGIN_MOUNT = PurePosixPath("/origin")  # host-owned bare repository, read-only
AGENT_USER = "agent"  # uid 1000 in the image
AGENT_HOME = PurePosixPath("/home/agent")


class SandboxError(Exception):
    """Root of the sandbox errors; `hint` says what the user can do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BackendUnavailable(SandboxError):
    """The backend (Docker daemon, runtime) cannot be reached."""


class ImageMissing(SandboxError):
    """The image named in the spec does not exist."""


class SandboxGone(SandboxError):
    """The sandbox is no longer running."""


@dataclass(frozen=True)
class Limits:
    """Resource limits that are always applied."""

    cpus: float = 1.0
    memory_mb: int = 2048
    pids: int = 256
    workspace_mb: int = 1024  # sized tmpfs holding the clone: ENOSPC past it
    tmp_mb: int = 256
    home_mb: int = 64


@dataclass(frozen=True)
class SandboxSpec:
    """Everything needed to create one sandbox."""

    image: str
    run_id: str
    agent_id: str
    origin: str  # host path of a host-owned bare repo, mounted read-only at ORIGIN_MOUNT
    branch: str  # branch the clone is put on
    base_commit: str  # commit the branch starts from
    role: str = "agent"
    limits: Limits = field(default_factory=Limits)
    network: bool = False  # False: no network at all
    env: Mapping[str, str] = field(default_factory=dict)
    runtime: str | None = None  # e.g. "runsc"; None: the daemon's default
    git_name: str = "fresh-sandbox agent"
    git_email: str = "agent@fresh-sandbox.invalid"


@dataclass(frozen=True)
class Egress:
    """An agent's only way out: an internal network and the allowlisting proxy on it."""

    network: str  # the internal network the agent's sandbox joins
    proxy_url: str  # http://NAME:PORT, resolvable on that network
    proxy_id: str
    subnet: str

    def env(self) -> dict[str, str]:
        """Proxy variables for the agent's commands (pip, curl, git and requests read them)."""
        return {"HTTP_PROXY": self.proxy_url, "HTTPS_PROXY": self.proxy_url,
                "http_proxy": self.proxy_url, "https_proxy": self.proxy_url}


@dataclass(frozen=True)
class ExecResult:
    """What one command did."""

    exit_code: int | None  # None when it was killed at its deadline
    output: bytes  # stdout and stderr interleaved, cut at the cap
    timed_out: bool
    truncated: bool  # output went past the cap and was cut
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


class Sandbox(Protocol):
    """A running sandbox holding a clone of the repository."""

    @property
    def id(self) -> str: ...

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 120.0,
        output_cap: int = 64 * 1024,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        """Run `command` with bash in the repo (or `cwd`), killing its process group at the deadline."""
        ...

    def read_file(self, path: str, max_bytes: int = 512 * 1024 * 1024) -> bytes:
        """Copy one regular file out of the sandbox."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Copy one file into the sandbox, owned by the agent user."""
        ...

    def is_running(self) -> bool: ...

    def isolate(self, egress: Egress | None = None) -> None:
        """Cut every network (setup had it); then join `egress`'s network if given. Verified inside."""
        ...

    def hold(self) -> None:
        """Keep this sandbox for a person: no reap of its run removes it (only an explicit delete)."""
        ...

    def remove(self) -> None:
        """Stop and delete the sandbox; safe to call twice."""
        ...


class Backend(Protocol):
    """Creates sandboxes and cleans up after them."""

    def preflight(self, image: str) -> None:
        """Raise BackendUnavailable or ImageMissing with a hint when a run cannot start."""
        ...

    def create(self, spec: SandboxSpec) -> Sandbox:
        """Start a hardened sandbox with the repo cloned on `spec.branch`; cleans up if start fails."""
        ...

    def open_egress(self, run_id: str, agent_id: str, image: str, allow: Sequence[str],
                    deny: Sequence[str]) -> Egress:
        """Start an allowlisting proxy on a new internal network for one agent (removed by reap)."""
        ...

    def attach(self, container_id: str) -> Sandbox:
        """Re-attach to a sandbox that outlived its supervisor; SandboxGone when it is not there."""
        ...

    def reap(self, run_id: str | None = None, keep: Collection[str] = ()) -> int:
        """Remove leftover sandboxes of `run_id` (or of every run) except the ids in `keep` and held ones."""
        ...
