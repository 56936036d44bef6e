"""The Docker sandbox against a real daemon and real git."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

from sandbox.base import ImageMissing, SandboxError, SandboxGone, SandboxSpec, Limits
from sandbox.docker import BASE_ENV, DockerBackend, DockerSandbox

if TYPE_CHECKING:
    from tests.integration.conftest import Origin

pytestmark = pytest.mark.docker


def sh(sb: DockerSandbox, command: str, **kw: object) -> str:
    """Run a command that must succeed; return its output as text."""
    result = sb.run(command, **kw)  # type: ignore[arg-type]
    assert result.ok, result.text()
    return result.text()


# -- hardening and limits ----------------------------------------------------

def test_limits_and_hardening_are_applied(sandbox: DockerSandbox) -> None:
    info = sandbox.describe()
    assert info["network_mode"] == "none"
    assert info["limits"]["cpus"] == 1.0
    assert info["limits"]["memory_mb"] == 2048 and info["limits"]["memory_swap_mb"] == 2048
    assert info["limits"]["pids"] == 256
    assert "size=1024m" in info["limits"]["tmpfs"]["/workspace"]
    assert info["hardening"] == {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
                                 "read_only_rootfs": True, "init": True}
    assert info["labels"]["fresh-sandbox"] == "1"


def test_inside_runs_unprivileged_without_network(sandbox: DockerSandbox) -> None:
    assert sh(sandbox, "id -u").strip() == "1000"
    assert sh(sandbox, "grep CapEff /proc/self/status").split() == ["CapEff:", "0000000000000000"]
    assert sh(sandbox, "ls /sys/class/net").split() == ["lo"]
    assert sh(sandbox, "grep NoNewPrivs /proc/self/status").split()[1] == "1"


def test_root_fs_is_read_only(sandbox: DockerSandbox) -> None:
    result = sandbox.run("touch /usr/evil")
    assert result.exit_code != 0 and "Read-only file system" in result.text()


def test_workspace_quota_gives_enospc(backend: DockerBackend,
                                      make_spec: Callable[..., SandboxSpec]) -> None:
    with backend.create(make_spec(limits=Limits(workspace_mb=16))) as sb:
        result = sb.run("dd if=/dev/zero of=/workspace/big bs=1M count=64")
        assert result.exit_code != 0
        assert "No space left on device" in result.text()


def test_environment_is_only_base_spec_and_call(backend: DockerBackend,
                                                 make_spec: Callable[..., SandboxSpec]) -> None:
    with backend.create(make_spec(env={"FROM_SPEC": "1"})) as sb:
        env = dict(line.split("=", 1) for line in sh(sb, "env -0 | tr '\\0' '\\n'",
                                                     env={"FROM_CALL": "2"}).splitlines() if "=" in line)
    # bash itself adds PWD, SHLVL and _; nothing else may leak in.
    assert set(env) - {"PWD", "SHLVL", "_"} == set(BASE_ENV) | {"FROM_SPEC", "FROM_CALL"}


# -- the clone -----------------------------------------------------------------

def test_clone_is_on_branch_at_base_commit(sandbox: DockerSandbox, origin: Origin) -> None:
    assert sh(sandbox, "git rev-parse HEAD").strip() == origin.commits[1]
    assert sh(sandbox, "git branch --show-current").strip() == "agent/work"
    assert sh(sandbox, "cat file.txt") == "version 1\n"
    assert sh(sandbox, "git status --porcelain") == ""
    # Full history and the rest of origin are there.
    assert sh(sandbox, "git rev-list --count HEAD").strip() == "2"
    assert sh(sandbox, "git rev-parse origin/main").strip() == origin.commits[2]
    assert sh(sandbox, "git config user.email").strip() == "agent@fresh-sandbox.invalid"


def test_agent_can_commit_and_bundle(sandbox: DockerSandbox, origin: Origin) -> None:
    sh(sandbox, "echo new > new.txt && git add new.txt && git commit -q -m agent")
    sh(sandbox, f"git bundle create /tmp/out.bundle {origin.commits[1]}..HEAD")
    assert len(sandbox.read_file("/tmp/out.bundle")) > 0


# -- running commands ------------------------------------------------------------

def test_timeout_kills_sigterm_ignoring_command_and_children(sandbox: DockerSandbox) -> None:
    start = time.monotonic()
    result = sandbox.run("trap '' TERM; (trap '' TERM; sleep 301) & sleep 302", timeout_s=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - start < 6  # 1 s deadline + ~2 s between SIGTERM and SIGKILL
    assert sandbox.run("pgrep -f 'sleep 30[12]'").exit_code == 1  # nothing left


def test_background_process_holding_output_does_not_stall(sandbox: DockerSandbox) -> None:
    start = time.monotonic()
    result = sandbox.run("setsid sleep 303 & sleep 304 & echo started", timeout_s=30)
    assert result.ok and result.text() == "started\n"
    assert time.monotonic() - start < 2
    # What stayed in the command's process group died with it.
    assert sandbox.run("pgrep -f 'sleep 304'").exit_code == 1


def test_reopening_stdout_or_stderr_loses_nothing(sandbox: DockerSandbox) -> None:
    result = sandbox.run("echo a; echo b >/dev/stderr; echo c | tee /dev/stderr >/dev/null; echo d")
    assert result.exit_code == 0 and result.output == b"a\nb\nc\nd\n"


def test_command_server_killed_by_the_agent_comes_back(sandbox: DockerSandbox) -> None:
    first = sandbox.run("kill -KILL $$")  # $$ is the fork server
    assert first.exit_code is None or first.exit_code != 0
    assert sandbox.run("echo back").output == b"back\n"


def test_exit_code_and_cwd(sandbox: DockerSandbox) -> None:
    assert sandbox.run("exit 7").exit_code == 7
    assert sh(sandbox, "pwd").strip() == "/workspace/repo"
    assert sh(sandbox, "pwd", cwd="/tmp").strip() == "/tmp"


def test_output_cap_keeps_head_and_tail(sandbox: DockerSandbox) -> None:
    result = sandbox.run("seq 1 100000", output_cap=1000)
    assert result.ok and result.truncated
    assert len(result.output) <= 1000
    assert result.output.startswith(b"1\n2\n3\n")
    assert result.output.endswith(b"99999\n100000\n")
    assert b"truncated" in result.output


def test_binary_output_is_exact(sandbox: DockerSandbox) -> None:
    result = sandbox.run("printf '\\000\\377\\376abc'")
    assert result.output == b"\x00\xff\xfeabc"


def test_channel_is_safe_to_share_between_threads(sandbox: DockerSandbox) -> None:
    outputs: dict[int, str] = {}

    def work(i: int) -> None:
        outputs[i] = sandbox.run(f"echo {i}").text()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs == {i: f"{i}\n" for i in range(8)}


# -- the channel surviving the agent -------------------------------------------

def test_driver_killed_mid_command_reports_and_reopens(sandbox: DockerSandbox) -> None:
    result = sandbox.run("kill -9 $PPID; sleep 1")
    assert result.exit_code is None and not result.timed_out
    assert b"channel lost" in result.output
    assert sh(sandbox, "echo back") == "back\n"


def test_driver_killed_between_commands_reopens_transparently(sandbox: DockerSandbox) -> None:
    sh(sandbox, "setsid sh -c 'sleep 0.3; pkill -9 -f \"python3 -I -c\"' >/dev/null 2>&1 &")
    time.sleep(1.5)
    assert sh(sandbox, "echo back") == "back\n"


def test_removed_container_raises_sandbox_gone(backend: DockerBackend,
                                                make_spec: Callable[..., SandboxSpec]) -> None:
    sb = backend.create(make_spec())
    backend.client.api.remove_container(sb.id, force=True)
    with pytest.raises(SandboxGone):
        sb.run("true")
    assert not sb.is_running()
    sb.remove()  # safe on a gone container


# -- files -----------------------------------------------------------------------

def test_write_then_read_file(sandbox: DockerSandbox) -> None:
    data = bytes(range(256)) * 1000
    sandbox.write_file("/workspace/repo/sub/dir/blob.bin", data, mode=0o600)
    assert sandbox.read_file("/workspace/repo/sub/dir/blob.bin") == data
    assert sh(sandbox, "stat -c '%a %u' sub/dir/blob.bin").strip() == "600 1000"


def test_read_refuses_symlinks_and_special_files(sandbox: DockerSandbox) -> None:
    sh(sandbox, "ln -s /etc/passwd link")
    with pytest.raises(SandboxError, match="not a regular file"):
        sandbox.read_file("/workspace/repo/link")
    with pytest.raises(SandboxError, match="not a regular file"):
        sandbox.read_file("/workspace/repo")
    with pytest.raises(SandboxError):
        sandbox.write_file("/workspace/repo/link", b"x")  # never follows the link


# -- lifecycle -------------------------------------------------------------------

def test_reap_removes_a_runs_containers(backend: DockerBackend,
                                         make_spec: Callable[..., SandboxSpec]) -> None:
    run = f"reap-{os.getpid()}-{time.monotonic_ns()}"
    first, second = backend.create(make_spec(run_id=run)), backend.create(make_spec(run_id=run))
    try:
        assert backend.reap(run) == 2
        assert not first.is_running() and not second.is_running()
        assert backend.sandbox_ids(run) == []
    finally:
        first.remove()
        second.remove()


def test_attach_to_an_existing_sandbox(backend: DockerBackend, sandbox: DockerSandbox) -> None:
    again = backend.attach(sandbox.id)
    assert again.run("git branch --show-current").text() == "agent/work\n"


def test_missing_image_raises_image_missing(backend: DockerBackend,
                                            make_spec: Callable[..., SandboxSpec]) -> None:
    with pytest.raises(ImageMissing, match="images build"):
        backend.preflight("fresh-sandbox/no-such-image:none")
    with pytest.raises(ImageMissing):
        backend.create(make_spec(image="fresh-sandbox/no-such-image:none"))


def test_failed_create_leaves_no_container(backend: DockerBackend,
                                           make_spec: Callable[..., SandboxSpec]) -> None:
    run = f"fail-{os.getpid()}-{time.monotonic_ns()}"
    with pytest.raises(SandboxError, match="setup failed"):
        backend.create(make_spec(run_id=run, base_commit="0" * 40))
    with pytest.raises(SandboxError):
        backend.create(make_spec(run_id=run, origin="/nonexistent/origin.git"))
    assert backend.sandbox_ids(run) == []


# -- images ------------------------------------------------------------------------

def test_registry_path_builds_from_a_given_base_with_extra_ca(
        backend: DockerBackend, agent_image: str, tmp_path: Path) -> None:
    """The registry path, with the offline base standing in for a public one."""
    import subprocess

    from sandbox.images import OFFLINE_BASE_IMAGE, build_images

    ca = tmp_path / "proxy-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=fresh-sandbox test proxy CA", "-keyout", str(tmp_path / "k"),
                    "-out", str(ca)], check=True, capture_output=True)
    tag = f"fresh-sandbox/agent:test-{uuid.uuid4().hex[:6]}"
    try:
        build_images(base_image=OFFLINE_BASE_IMAGE, extra_ca=ca, force=True, tag=tag,
                     log=lambda line: None)
        out = backend.client.containers.run(
            tag, ["sh", "-c", "id -u; git --version; python3 -m pytest --version; "
                  "echo $PIP_CERT; grep -c BEGIN /etc/ssl/certs/ca-certificates.crt; "
                  "ls /usr/local/share/ca-certificates"],
            remove=True, network_mode="none", labels={"fresh-sandbox": "1"}).decode()
        assert out.splitlines()[0] == "1000"
        assert "git version" in out and "pytest" in out
        assert "/etc/ssl/certs/ca-certificates.crt" in out
        assert "extra-ca.crt" in out
    finally:
        backend.client.images.remove(tag, force=True)


def test_offline_base_errors_have_hints(backend: DockerBackend,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as shutil_mod

    from sandbox import images

    with pytest.raises(images.ImageBuildFailed, match="unreachable"):
        images.build_offline_base(force=True, mirror="http://127.0.0.1:9/debian",
                                  log=lambda line: None)
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(images.ImageBuildFailed, match="root"):
        images.build_offline_base(force=True, log=lambda line: None)
    monkeypatch.setattr(shutil_mod, "which", lambda name: None)
    with pytest.raises(images.ImageBuildFailed) as err:
        images.build_offline_base(force=True, log=lambda line: None)
    assert err.value.hint == "apt-get install debootstrap"


@pytest.mark.skipif(not os.environ.get("FRESH_SANDBOX_SLOW"),
                    reason="debootstraps Debian (~1 min, needs the mirror); set FRESH_SANDBOX_SLOW=1")
def test_offline_base_builds_with_debootstrap(backend: DockerBackend) -> None:
    from sandbox.images import OFFLINE_BASE_IMAGE, build_offline_base

    build_offline_base(force=True, log=lambda line: None)
    out = backend.client.containers.run(OFFLINE_BASE_IMAGE, ["git", "--version"], remove=True,
                                        network_mode="none", labels={"fresh-sandbox": "1"})
    assert out.startswith(b"git version")
