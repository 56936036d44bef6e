"""A persistent command channel into one container, over the Docker API socket.

One `docker exec` runs `sandbox/driver.py` (sent as text: nothing is baked into
the image) as the agent user, with `python3 -I -S` (isolated, no site: the agent
cannot plant modules into it, and skipping site saves ~50 ms per open); requests and responses are JSON lines over its
stdin and stdout. Docker multiplexes the exec's stdout and stderr on one socket
with 8-byte frame headers (stream type, 3 zero bytes, big-endian length); this
module demultiplexes them itself so it can put a deadline on every read.

The agent runs as the same uid as the driver and may kill it: a dead driver is
noticed before the next request and the channel reopens. A driver that dies
*during* a request raises ChannelLost (the command may have had effects, so it
is not retried unless the request is idempotent).
"""

from __future__ import annotations

import importlib.resources
import json
import select
import socket
import struct
import threading
import time
from typing import Any

import docker
import docker.errors

from sandbox.base import AGENT_HOME, AGENT_USER, SandboxError, SandboxGone

IDEMPOTENT_OPS = frozenset({"ping", "read"})
_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2


class ChannelLost(SandboxError):
    """The driver died while a request was in flight."""


class ChannelTimeout(ChannelLost):
    """The driver did not answer before the host-side deadline."""


def driver_source() -> str:
    """The text of the in-sandbox driver, read from the installed package."""
    return importlib.resources.files("sandbox").joinpath("driver.py").read_text("utf-8")


class Channel:
    """One persistent driver process in one container; thread-safe, one request at a time."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self._api = api
        self._container_id = container_id
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._keep: Any = None  # docker-py's wrapper, kept so the socket is not collected
        self._frames = bytearray()  # raw bytes not yet parsed into frames
        self._stdout = bytearray()  # demultiplexed stdout not yet consumed as lines
        self._stderr = b""  # the tail of what the driver said on stderr, for errors

    def request(self, req: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait up to `timeout_s` for its response."""
        with self._lock:
            if self._sock is None or self._driver_gone():
                self._reopen()
            try:
                return self._exchange(req, timeout_s)
            except ChannelTimeout:
                raise
            except ChannelLost:
                self._close()
                self._raise_if_container_gone()
                if req.get("op") not in IDEMPOTENT_OPS:
                    raise
                self._reopen()
                return self._exchange(req, timeout_s)

    def close(self) -> None:
        """Close the socket; the driver exits when its stdin closes."""
        with self._lock:
            self._close()

    # -- opening and closing ------------------------------------------------

    def _reopen(self) -> None:
        """Start a fresh driver exec and take its hijacked socket."""
        self._close()
        try:
            exec_id = self._api.exec_create(
                self._container_id,
                ["python3", "-I", "-S", "-c", driver_source()],
                stdin=True, stdout=True, stderr=True, tty=False,
                user=AGENT_USER, workdir=str(AGENT_HOME),
            )["Id"]
            wrapper = self._api.exec_start(exec_id, socket=True)
        except docker.errors.NotFound as exc:
            raise SandboxGone(f"container {self._container_id[:12]} is gone") from exc
        except docker.errors.APIError as exc:
            self._raise_if_container_gone()
            raise SandboxError(f"cannot open the command channel: {exc}") from exc
        self._keep = wrapper
        self._sock = wrapper._sock

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._keep = None, None
        self._frames, self._stdout, self._stderr = bytearray(), bytearray(), b""

    def _driver_gone(self) -> bool:
        """True when the idle socket is readable: between requests that can only mean EOF."""
        assert self._sock is not None
        ready, _, _ = select.select([self._sock], [], [], 0)
        return bool(ready)

    def _raise_if_container_gone(self) -> None:
        try:
            state = self._api.inspect_container(self._container_id)["State"]
        except docker.errors.NotFound as exc:
            raise SandboxGone(f"container {self._container_id[:12]} is gone") from exc
        if not state.get("Running"):
            raise SandboxGone(f"container {self._container_id[:12]} is {state.get('Status')}")

    # -- one exchange -------------------------------------------------------

    def _exchange(self, req: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self._sock is not None
        deadline = time.monotonic() + timeout_s
        try:
            self._sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as exc:
            raise ChannelLost(f"driver unreachable: {exc}") from exc
        line = self._read_line(deadline)
        response: dict[str, Any] = json.loads(line)
        return response

    def _read_line(self, deadline: float) -> bytes:
        """Read demultiplexed stdout until one full line, within the deadline."""
        while True:
            self._parse_frames()
            end = self._stdout.find(b"\n")
            if end >= 0:
                line = bytes(self._stdout[:end])
                del self._stdout[: end + 1]
                return line
            self._receive(deadline)

    def _receive(self, deadline: float) -> None:
        assert self._sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self._close()
            raise ChannelTimeout("the driver did not answer before the deadline")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(1 << 20)
        except socket.timeout:
            chunk = None
        except OSError as exc:
            raise ChannelLost(f"driver connection broke: {exc}") from exc
        if chunk is None:
            self._close()
            raise ChannelTimeout("the driver did not answer before the deadline")
        if not chunk:
            stderr = self._stderr.decode("utf-8", "replace")[-500:]
            raise ChannelLost("the driver exited" + (f": {stderr}" if stderr else ""))
        self._frames += chunk

    def _parse_frames(self) -> None:
        """Move every complete frame from the raw buffer to stdout or stderr."""
        pos = 0
        while len(self._frames) - pos >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._frames, pos)
            end = pos + _HEADER.size + size
            if len(self._frames) < end:
                break
            payload = self._frames[pos + _HEADER.size:end]
            if stream == _STDOUT:
                self._stdout += payload
            elif stream == _STDERR:
                self._stderr = (self._stderr + bytes(payload))[-4096:]
            pos = end
        del self._frames[:pos]
