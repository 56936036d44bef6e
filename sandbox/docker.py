"""The Docker backend: hardened containers, a clone inside, reap by label.

Each sandbox is one container whose main process only sleeps (under docker's
init); the work happens through a persistent command channel (channel.py).
The user's repository never enters the container as a working tree: a
host-owned bare repo is mounted read-only at /origin and cloned inside.
"""

from __future__ import annotations

from collections.abc import Collection

import base64
import shlex
import time
from typing import Any, Mapping, Sequence

import docker
import docker.errors
import docker.types
import requests.exceptions

from sandbox.base import (
    AGENT_HOME, AGENT_USER, LABEL_AGENT, LABEL_PREFIX, LABEL_ROLE, LABEL_RUN, ORIGIN_MOUNT,
    REPO_DIR, WORKSPACE, BackendUnavailable, Egress, ExecResult, ImageMissing, SandboxError,
    SandboxGone, SandboxSpec,
)
from sandbox import egress
from sandbox.channel import Channel, ChannelLost, ChannelTimeout

LABEL_ALL = LABEL_PREFIX  # "fresh-sandbox=1" on everything we create
AGENT_UID = 1000
BASE_ENV = {
    "HOME": str(AGENT_HOME),
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "USER": AGENT_USER,
}
CHANNEL_GRACE_S = 10.0  # host deadline past the command's own (the driver needs ~2 s to kill)
FILE_TIMEOUT_S = 120.0
SETUP_TIMEOUT_S = 300.0
DAEMON_HINT = ("is dockerd running? try `sudo systemctl start docker` (or `dockerd &`), "
               "and check DOCKER_HOST")
BUILD_HINT = "run `fresh-sandbox images build`"


def connect() -> docker.DockerClient:
    """A docker client that has answered a ping, or BackendUnavailable."""
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise BackendUnavailable(f"the Docker daemon does not answer: {exc}", DAEMON_HINT) from exc
    return client


def _tmpfs(size_mb: int) -> str:
    # Docker adds noexec unless told otherwise; tests and venvs run from these.
    return f"rw,exec,nosuid,nodev,size={size_mb}m,uid={AGENT_UID},gid={AGENT_UID},mode=0755"


def container_kwargs(spec: SandboxSpec) -> dict[str, Any]:
    """The hardened `containers.create` arguments for a spec (also used by the benchmark)."""
    lim = spec.limits
    return dict(
        image=spec.image,
        command=main_command(spec),
        user=f"{AGENT_UID}:{AGENT_UID}",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        init=True,  # reaps orphans, and makes stop/kill immediate
        network_mode="bridge" if spec.network else "none",
        nano_cpus=int(lim.cpus * 1e9),
        mem_limit=f"{lim.memory_mb}m",
        memswap_limit=f"{lim.memory_mb}m",  # no swap beyond the memory limit
        pids_limit=lim.pids,
        tmpfs={str(WORKSPACE): _tmpfs(lim.workspace_mb), "/tmp": _tmpfs(lim.tmp_mb),
               str(AGENT_HOME): _tmpfs(lim.home_mb)},
        # A Mount (unlike `volumes`) fails on a missing source instead of creating it on the host.
        mounts=[docker.types.Mount(str(ORIGIN_MOUNT), spec.origin, type="bind", read_only=True)],
        environment={**spec.env, **BASE_ENV},
        labels={LABEL_ALL: "1", LABEL_RUN: spec.run_id, LABEL_AGENT: spec.agent_id,
                LABEL_ROLE: spec.role},
        runtime=spec.runtime,
        use_config_proxy=False,  # the host's proxy settings are not the agent's business
        working_dir=str(WORKSPACE),
    )


HELD_PREFIX = "fresh-held-"  # a held sandbox's name: reap leaves it for a person

CLONE_RC = "/tmp/.fresh-sandbox-clone.rc"
CLONE_LOG = "/tmp/.fresh-sandbox-clone.log"


def clone_command(spec: SandboxSpec) -> str:
    """The shell line that puts the repo at REPO_DIR on spec.branch at spec.base_commit."""
    q = shlex.quote
    origin, repo = q(str(ORIGIN_MOUNT)), q(str(REPO_DIR))
    return (
        # /origin belongs to host root: trust it for this clone (-c) and later fetches
        # (~/.gitconfig, written by the shell builtin to spare a git process).
        f"printf '[safe]\\n\\tdirectory = /origin\\n' > ~/.gitconfig && "
        f"git -c safe.directory={origin} clone -q --no-checkout --no-hardlinks "
        f"-c user.name={q(spec.git_name)} -c user.email={q(spec.git_email)} {origin} {repo} && "
        f"git -C {repo} checkout -q -B {q(spec.branch)} {q(spec.base_commit)}"
    )


def main_command(spec: SandboxSpec) -> list[str]:
    """The container's main process: clone, record the outcome, then sleep forever.

    Cloning here overlaps the clone with opening the command channel (~150 ms
    of docker exec and Python start-up) instead of following it.
    """
    script = (f"( {clone_command(spec)} ) > {CLONE_LOG} 2>&1; echo $? > {CLONE_RC}.tmp; "
              f"mv {CLONE_RC}.tmp {CLONE_RC}; exec sleep infinity")
    return ["sh", "-c", script]


WAIT_FOR_CLONE = (
    f"while [ ! -e {CLONE_RC} ]; do sleep 0.005; done; "
    f"[ \"$(cat {CLONE_RC})\" = 0 ] || {{ cat {CLONE_LOG}; exit 1; }}"
)


class DockerBackend:
    """Creates hardened Docker sandboxes; the docker client is made on first use."""

    def __init__(self) -> None:
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    def preflight(self, image: str) -> None:
        """Raise BackendUnavailable or ImageMissing with a hint when a run cannot start."""
        self._require_image(image)

    def create(self, spec: SandboxSpec) -> DockerSandbox:
        """Start a hardened container and clone the repo inside; removes it if any step fails."""
        self._require_image(spec.image)
        container_id = self._start(spec)
        sandbox = DockerSandbox(self.client, container_id, base_env={**spec.env, **BASE_ENV})
        try:
            sandbox.setup(WAIT_FOR_CLONE)
        except BaseException:
            sandbox.remove()
            raise
        return sandbox

    def open_egress(self, run_id: str, agent_id: str, image: str, allow: Sequence[str],
                    deny: Sequence[str]) -> Egress:
        """Start an allowlisting proxy on a new internal network for one agent (removed by reap)."""
        return egress.open_egress(self.client, run_id, agent_id, image, allow, deny)

    def attach(self, container_id: str) -> DockerSandbox:
        """Re-attach to an existing sandbox container (crash recovery)."""
        try:
            attrs = self.client.api.inspect_container(container_id)
        except docker.errors.NotFound as exc:
            raise SandboxGone(f"container {container_id[:12]} does not exist") from exc
        labels = attrs["Config"].get("Labels") or {}
        if labels.get(LABEL_ALL) != "1":
            raise SandboxError(f"container {container_id[:12]} is not a fresh-sandbox container")
        env = dict(e.split("=", 1) for e in attrs["Config"].get("Env") or [] if "=" in e)
        return DockerSandbox(self.client, attrs["Id"], base_env=env)

    def sandbox_ids(self, run_id: str | None = None) -> list[str]:
        """Ids of the sandbox containers of `run_id` (or of every run), running or not."""
        label = f"{LABEL_RUN}={run_id}" if run_id else f"{LABEL_ALL}=1"
        return [c["Id"] for c in self.client.api.containers(all=True, filters={"label": label})]

    def held_ids(self, run_id: str | None = None) -> list[str]:
        """Ids of the sandboxes held for a person (see `DockerSandbox.hold`)."""
        return [cid for cid in self.sandbox_ids(run_id)
                if self.client.api.inspect_container(cid)["Name"].lstrip("/").startswith(HELD_PREFIX)]

    def reap(self, run_id: str | None = None, keep: Collection[str] = ()) -> int:
        """Force-remove the sandbox containers of `run_id` (or of every run) but `keep` and held ones."""
        removed = 0
        held = set(self.held_ids(run_id))
        for cid in self.sandbox_ids(run_id):
            if cid in held or any(cid.startswith(k) for k in keep if k):
                continue
            try:
                self.client.api.remove_container(cid, force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass  # someone else got there first
        egress.remove_networks(self.client, run_id)
        return removed

    def _require_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"image {image} not found", BUILD_HINT) from exc
        except docker.errors.APIError as exc:
            raise BackendUnavailable(f"cannot inspect image {image}: {exc}", DAEMON_HINT) from exc

    def _start(self, spec: SandboxSpec) -> str:
        """Create then start, so a container that fails to start can be removed by its id."""
        try:
            container = self.client.containers.create(**container_kwargs(spec))
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"image {spec.image} not found", BUILD_HINT) from exc
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot create a sandbox: {exc.explanation or exc}") from exc
        try:
            container.start()
        except BaseException as exc:
            self.client.api.remove_container(container.id, force=True, v=True)
            if isinstance(exc, docker.errors.APIError):
                raise SandboxError(f"cannot start a sandbox: {exc.explanation or exc}") from exc
            raise
        return str(container.id)


class DockerSandbox:
    """One running container, spoken to through a persistent channel."""

    def __init__(self, client: docker.DockerClient, container_id: str,
                 base_env: Mapping[str, str]) -> None:
        self._client = client
        self._id = container_id
        self._base_env = dict(base_env)
        self._channel = Channel(client.api, container_id)

    @property
    def id(self) -> str:
        return self._id

    def setup(self, command: str) -> None:
        """Run a setup step; failure raises SandboxError with the step's output."""
        result = self.run(command, timeout_s=SETUP_TIMEOUT_S, cwd=str(WORKSPACE))
        if not result.ok:
            raise SandboxError(f"sandbox setup failed (exit {result.exit_code}): {result.text()[-2000:]}")

    def run(self, command: str, *, timeout_s: float = 120.0, output_cap: int = 64 * 1024,
            env: Mapping[str, str] | None = None, cwd: str | None = None) -> ExecResult:
        """Run `command` with bash in the repo (or `cwd`), killing its process group at the deadline."""
        start = time.monotonic()
        req = {"op": "run", "command": command, "cwd": cwd or str(REPO_DIR),
               "env": {**self._base_env, **(env or {})}, "timeout": timeout_s, "cap": output_cap}
        try:
            resp = self._channel.request(req, timeout_s + CHANNEL_GRACE_S)
        except ChannelTimeout:
            return ExecResult(None, b"[fresh-sandbox: no answer from the sandbox before the deadline]",
                              True, False, time.monotonic() - start)
        except ChannelLost as exc:
            # The command most likely killed the driver (same uid); the channel reopens next call.
            return ExecResult(None, f"[fresh-sandbox: command channel lost: {exc}]".encode(),
                              False, False, time.monotonic() - start)
        self._check(resp, "run")
        return ExecResult(resp["exit_code"], base64.b64decode(resp["output"]), resp["timed_out"],
                          resp["truncated"], time.monotonic() - start)

    def read_file(self, path: str, max_bytes: int = 512 * 1024 * 1024) -> bytes:
        """Copy one regular file out of the sandbox (symlinks and special files refused)."""
        resp = self._channel.request({"op": "read", "path": path, "max_bytes": max_bytes},
                                     FILE_TIMEOUT_S)
        self._check(resp, f"read {path}")
        return base64.b64decode(resp["data"])

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Copy one file into the sandbox, owned by the agent user."""
        resp = self._channel.request(
            {"op": "write", "path": path, "data": base64.b64encode(data).decode("ascii"),
             "mode": mode}, FILE_TIMEOUT_S)
        self._check(resp, f"write {path}")

    def is_running(self) -> bool:
        try:
            state = self._client.api.inspect_container(self._id)["State"]
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running"))

    def isolate(self, egress: Egress | None = None) -> None:
        """Disconnect from every network, join `egress`'s if given, and check the interfaces inside."""
        nets = self._client.api.inspect_container(self._id)["NetworkSettings"]["Networks"] or {}
        try:
            for name in nets:
                self._client.api.disconnect_container_from_network(self._id, name, force=True)
            if egress is not None:
                self._client.api.connect_container_to_network(self._id, egress.network)
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot cut the network of {self._id[:12]}: {exc}") from exc
        seen = self.run("ls /sys/class/net", timeout_s=30, cwd="/").text().split()
        if "lo" not in seen or len(seen) != (2 if egress is not None else 1):
            raise SandboxError(f"network not cut: interfaces {seen} in {self._id[:12]}")
        self._base_env.update(egress.env() if egress is not None else {})

    def hold(self) -> None:
        """Rename the container `fresh-held-...`: reap skips it, `docker rm -f` removes it."""
        self._channel.close()
        try:
            self._client.api.rename(self._id, f"{HELD_PREFIX}{self._id[:12]}")
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot hold {self._id[:12]}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """Container id, image, state, network mode and the limits Docker actually applied."""
        try:
            a = self._client.api.inspect_container(self._id)
        except docker.errors.NotFound as exc:
            raise SandboxGone(f"container {self._id[:12]} is gone") from exc
        host = a["HostConfig"]
        return {
            "id": a["Id"], "name": a["Name"].lstrip("/"), "image": a["Config"]["Image"],
            "state": a["State"]["Status"], "started_at": a["State"].get("StartedAt"),
            "labels": a["Config"].get("Labels") or {}, "network_mode": host.get("NetworkMode"),
            "runtime": host.get("Runtime"), "user": a["Config"].get("User"),
            "limits": {
                "cpus": (host.get("NanoCpus") or 0) / 1e9,
                "memory_mb": (host.get("Memory") or 0) // (1024 * 1024),
                "memory_swap_mb": (host.get("MemorySwap") or 0) // (1024 * 1024),
                "pids": host.get("PidsLimit"),
                "tmpfs": host.get("Tmpfs") or {},
            },
            "hardening": {
                "cap_drop": host.get("CapDrop"), "security_opt": host.get("SecurityOpt"),
                "read_only_rootfs": host.get("ReadonlyRootfs"), "init": host.get("Init"),
            },
        }

    def remove(self) -> None:
        """Stop and delete the container; safe to call twice."""
        self._channel.close()
        try:
            self._client.api.remove_container(self._id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise SandboxError(f"cannot remove {self._id[:12]}: {exc}") from exc

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _check(self, resp: Mapping[str, Any], what: str) -> None:
        if not resp.get("ok"):
            raise SandboxError(f"{what} failed in the sandbox: {resp.get('error')}")
