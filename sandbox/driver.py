"""The in-sandbox end of the command channel (stdlib only; runs as the agent user).

The host starts this text with `python3 -I -c SOURCE` through ONE `docker exec`
and then speaks JSON lines over its stdin/stdout, so a command costs a fork of
bash instead of a whole `docker exec`. Nothing here is baked into the image.

Requests (one JSON object per line, answered in order):
  {"op": "ping"}
  {"op": "run", "command": str, "cwd": str, "env": {..}, "timeout": float, "cap": int}
  {"op": "read", "path": str, "max_bytes": int}
  {"op": "write", "path": str, "data": base64, "mode": int}
Responses: {"ok": true, ...fields} or {"ok": false, "error": str}.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from typing import Any

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a command's process group
MARKER = b"\n[... output truncated by fresh-sandbox ...]\n"


def _signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; it may already be gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# One persistent bash forks a subshell per command, so no command pays for an exec of
# bash (dynamic binaries load slowly over fuse-overlayfs: ~4 ms; a fork is ~0.5 ms).
# `set -m` puts each command in a process group of its own. Per command it reads the
# output pipe's path and the script, both length-prefixed, and answers "PID" when the
# command starts and "STATUS" when it ends.
FORK_SERVER = r"""
LC_ALL=C
set -m
while IFS= read -r n && IFS= read -r -N "$n" out && IFS= read -r n && IFS= read -r -N "$n" spec; do
  exec 3>"$out"
  ( eval "$spec" ) 1>&3 2>&3 </dev/null &
  pid=$!
  exec 3>&-
  echo "$pid"
  wait "$pid"
  echo "$?"
done
"""


def _quote(text: str) -> str:
    """Single-quote for bash."""
    return "'" + text.replace("'", "'\\''") + "'"


def command_script(command: str, env: dict[str, str], cwd: str | None) -> str:
    """What the subshell evaluates: exactly `env`, the working directory, then the command."""
    lines = ["unset LC_ALL"]  # the server's own byte-wise locale stays out of the command
    lines += [f"export {key}={_quote(value)}" for key, value in env.items() if key.isidentifier()]
    if cwd:
        lines.append(f"cd -- {_quote(cwd)} || exit 127")
        lines.append("unset OLDPWD")  # a fresh `bash -c` has none
    lines.append(f"eval -- {_quote(command)}")
    return "\n".join(lines)


class ForkServer:
    """The persistent bash; restarted when it is gone (the agent, same uid, can kill it)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def start(self, command_path: str, command_script_text: str, output: Output) -> int:
        """Start one command; returns its pid (also its process group)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", FORK_SERVER], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, start_new_session=True,
                close_fds=True,
            )
            self.buffer = b""
        assert self.proc.stdin is not None
        path, script = command_path.encode(), command_script_text.encode()
        self.proc.stdin.write(b"%d\n%s%d\n%s" % (len(path), path, len(script), script))
        self.proc.stdin.flush()
        line = self.read_line(30.0, output)
        if line is None:
            raise RuntimeError("the command server did not start the command")
        return int(line)

    def read_line(self, timeout: float, output: Output) -> bytes | None:
        """The server's next line, or None at the deadline or when it is gone; keeps `output` flowing."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready = select.select([fd, *output.fds()], [], [], left)[0]
            if output.read_fd in ready:
                output.pump()
            if fd not in ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                self.proc.wait()
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


class Output:
    """A command's stdout and stderr through a pipe: its first and last `cap` bytes and the total.

    A pipe, not a file: reopening /dev/stdout (`>/dev/stderr`, `tee /dev/stdout`) must not
    truncate what was already written, and a full /tmp must not swallow it. The step never
    waits for end-of-file, so a background process holding the pipe open cannot stall it.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.eof = False

    @property
    def path(self) -> str:
        """Where the command server opens the writing end."""
        return f"/proc/{os.getpid()}/fd/{self.write_fd}"

    def writer_opened(self) -> None:
        """The server holds its own writing end now; ours would keep end-of-file from coming."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def fds(self) -> list[int]:
        return [] if self.eof else [self.read_fd]

    def pump(self) -> None:
        """Take in whatever is readable now."""
        while not self.eof:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            self.total += len(chunk)
            self.head += chunk[: max(self.cap - len(self.head), 0)]
            self.tail += chunk
            del self.tail[: max(len(self.tail) - self.cap, 0)]

    def drain(self, seconds: float) -> None:
        """Read what is left, until end-of-file or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while not self.eof and (left := deadline - time.monotonic()) > 0:
            if select.select([self.read_fd], [], [], left)[0]:
                self.pump()

    def result(self) -> tuple[bytes, bool]:
        """The output, head and tail with a marker between when it went past the cap."""
        if self.total <= self.cap:
            return bytes(self.head), False
        keep = max(self.cap - len(MARKER), 0)
        tail = keep - keep // 2
        return bytes(self.head[: keep // 2]) + MARKER + (bytes(self.tail[-tail:]) if tail else b""), True

    def close(self) -> None:
        self.writer_opened()
        os.close(self.read_fd)


SERVER = ForkServer()


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return None
    return int(stat_line[stat_line.rindex(b")") + 2:].split()[1])


def _main_pid() -> int:
    """The container's main process: the first child of init (it clones, then sleeps)."""
    children = [p for p in (int(d) for d in os.listdir("/proc") if d.isdigit()) if _ppid(p) == 1]
    return min(children, default=0)


MAIN_PID = 0  # set in main()


def _kill_strays() -> int:
    """SIGKILL every process a command left behind, `setsid` escapees included; returns how many.

    Spared: init (pid 1), the container's main process, the command server, and processes whose
    parent is outside the container (ppid 0: this driver and other `docker exec`
    sessions, which only the host can start). Anything an agent starts has a
    parent inside the container, or init once orphaned.
    """
    killed = 0
    for _ in range(3):  # a fork racing the scan is caught on the next pass
        strays = [p for p in (int(d) for d in os.listdir("/proc") if d.isdigit())
                  if p not in (1, MAIN_PID, os.getpid(), SERVER.pid) and _ppid(p) not in (0, None)]
        if not strays:
            break
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return killed


def op_run(req: dict[str, Any]) -> dict[str, Any]:
    """Run one command in a fresh subshell with exactly the given env, a deadline and a cap."""
    start = time.monotonic()
    output = Output(int(req.get("cap", 65536)))
    try:
        script = command_script(req["command"], dict(req.get("env") or {}), req.get("cwd"))
        pid = SERVER.start(output.path, script, output)
        output.writer_opened()
        code, timed_out = _finish(pid, float(req.get("timeout", 120.0)), output)
        # Whatever the command left running dies with it: its group, then escapees.
        _signal_group(pid, signal.SIGKILL)
        strays = _kill_strays() if req.get("reap_strays", True) else 0
        output.drain(0.5)
        data, truncated = output.result()
    finally:
        output.close()
    return {
        "exit_code": code,
        "timed_out": timed_out,
        "truncated": truncated,
        "output": base64.b64encode(data).decode("ascii"),
        "duration": time.monotonic() - start,
        "strays_killed": strays,
    }


def _finish(pid: int, timeout: float, output: Output) -> tuple[int | None, bool]:
    """Wait for the command: (exit status, timed out); SIGTERM then SIGKILL at the deadline."""
    line = SERVER.read_line(timeout, output)
    timed_out = line is None and SERVER.proc is not None and SERVER.proc.poll() is None
    if timed_out:
        _signal_group(pid, signal.SIGTERM)
        line = SERVER.read_line(KILL_GRACE_S, output)
        if line is None:
            _signal_group(pid, signal.SIGKILL)
            line = SERVER.read_line(10.0, output)
    if line is None or timed_out:
        return None, timed_out
    return int(line), False


def op_read(req: dict[str, Any]) -> dict[str, Any]:
    """Return one regular file's bytes; symlinks and special files are refused."""
    path = req["path"]
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file")
    limit = int(req.get("max_bytes", 512 * 1024 * 1024))
    if st.st_size > limit:
        raise ValueError(f"{path} is {st.st_size} bytes, over the limit of {limit}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} grew past the limit of {limit} bytes")
    return {"data": base64.b64encode(data).decode("ascii")}


def op_write(req: dict[str, Any]) -> dict[str, Any]:
    """Write one file (parents created), never following a symlink at the target."""
    path = req["path"]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    mode = int(req.get("mode", 0o644))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(req["data"]))
        os.fchmod(f.fileno(), mode)
    return {}


OPS = {"ping": lambda req: {"pid": os.getpid()}, "run": op_run, "read": op_read, "write": op_write}


def handle(line: bytes) -> dict[str, Any]:
    """Answer one request line; every failure becomes an error response."""
    try:
        req = json.loads(line)
        return {"ok": True, **OPS[req["op"]](req)}
    except Exception as exc:  # the host decides what an error means
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    """Serve requests until stdin closes."""
    global MAIN_PID
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    MAIN_PID = _main_pid()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if line.strip():
            out.write(json.dumps(handle(line)).encode() + b"\n")
            out.flush()


if __name__ == "__main__":
    main()
