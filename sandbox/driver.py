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
import tempfile
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


def _wait(proc: "subprocess.Popen[bytes]", timeout: float) -> bool:
    """Wait for the child up to `timeout`; True if it exited.

    Popen.wait(timeout) polls with growing sleeps (milliseconds of latency per
    command); a pidfd wakes us the moment the child exits.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
        return True
    finally:
        os.close(pidfd)


def _stop_at_deadline(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM the group, then SIGKILL it if the leader has not gone within the grace."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


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

    Spared: init (pid 1), the container's main process, and processes whose
    parent is outside the container (ppid 0: this driver and other `docker exec`
    sessions, which only the host can start). Anything an agent starts has a
    parent inside the container, or init once orphaned.
    """
    killed = 0
    for _ in range(3):  # a fork racing the scan is caught on the next pass
        strays = [p for p in (int(d) for d in os.listdir("/proc") if d.isdigit())
                  if p not in (1, MAIN_PID, os.getpid()) and _ppid(p) not in (0, None)]
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


def _read_output(out: Any, cap: int) -> tuple[bytes, bool]:
    """Read what a command wrote, reading only head and tail of huge outputs."""
    # What the command wrote ends at the shared file offset (the file is preallocated, so its size is not it).
    size = os.lseek(out.fileno(), 0, os.SEEK_CUR)
    out.seek(0)
    if size <= cap:
        return out.read(size), False
    keep = max(cap - len(MARKER), 0)
    head = out.read(keep // 2)
    out.seek(size - (keep - keep // 2))
    return head + MARKER + out.read(keep - keep // 2), True


def op_run(req: dict[str, Any]) -> dict[str, Any]:
    """Run one bash command in its own session with a clean env and a deadline."""
    start = time.monotonic()
    cap = int(req.get("cap", 65536))
    # Output goes to an unlinked temp file: a background child holding it open
    # cannot stall us the way a pipe would.
    with tempfile.TemporaryFile(dir=req.get("tmpdir") or None) as out:
        try:  # reserve the kept head, so an agent that filled /tmp still sees what its command said
            os.posix_fallocate(out.fileno(), 0, cap)
        except OSError:
            pass
        proc = subprocess.Popen(
            ["bash", "-c", req["command"]],
            cwd=req.get("cwd") or None,
            env=dict(req.get("env") or {}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        timed_out = False
        code: int | None
        if _wait(proc, float(req.get("timeout", 120.0))):
            code = proc.returncode
        else:
            _stop_at_deadline(proc)
            timed_out, code = True, None
        # Whatever the command left running dies with it: its group, then escapees.
        _signal_group(proc.pid, signal.SIGKILL)
        strays = _kill_strays() if req.get("reap_strays", True) else 0
        data, truncated = _read_output(out, cap)
    return {
        "exit_code": code,
        "timed_out": timed_out,
        "truncated": truncated,
        "output": base64.b64encode(data).decode("ascii"),
        "duration": time.monotonic() - start,
        "strays_killed": strays,
    }


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
