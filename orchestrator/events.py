"""structlog set-up: one JSON line per event in the run's events.jsonl, plus console output.

Processors are chained once at start-up: context ids from contextvars, a UTC
timestamp, redaction of every known secret, then a sink that writes the JSON
file and renders the console. Call sites bind context and emit short names:
`log.bind(agent=...).info("tool_call", exit_code=0)`.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any, Iterable, MutableMapping

import structlog
from structlog.typing import EventDict, WrappedLogger

from orchestrator.tools import strip_control

REDACTED = "***"


class Redactor:
    """Replaces every registered secret and strips terminal controls, wherever they appear in an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            # Agent text (summaries, commands) must not carry escapes to a terminal via `jq -r`.
            return strip_control(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) for v in value]
        return value

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        return {key: self.scrub(val) for key, val in event.items()}


class Sink:
    """The last processor: writes the JSON line and the console form, then drops the event."""

    def __init__(self, path: Path | None, console: str, stream: IO[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        self._console = console  # "pretty", "json" or "quiet"
        self._stream = stream

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        line = json.dumps(event, default=str, ensure_ascii=False)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            stream = self._stream or (sys.stdout if self._console == "json" else sys.stderr)
            if self._console == "json":
                stream.write(line + "\n")
            elif self._console == "pretty":
                stream.write(render_pretty(event) + "\n")
            stream.flush()
        raise structlog.DropEvent

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


_HEAD_KEYS = ("timestamp", "level", "event", "run", "agent", "task")


def render_pretty(event: MutableMapping[str, Any] | dict[str, Any]) -> str:
    """One readable line for a person: time, agent, event, then the rest as key=value."""
    stamp = str(event.get("timestamp", ""))[11:19]
    agent = event.get("agent", "")
    rest = " ".join(
        f"{key}={_short(value)}" for key, value in event.items() if key not in _HEAD_KEYS
    )
    level = str(event.get("level", "info"))
    marker = "" if level == "info" else f"[{level}] "
    return strip_control(f"{stamp} {agent:<8} {marker}{event.get('event', '')} {rest}".rstrip())


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_current_sink: Sink | None = None


def configure(
    events_path: Path | None, *, secrets: Iterable[str] = (), console: str = "pretty",
    stream: IO[str] | None = None,
) -> None:
    """Route all events to `events_path` (JSON lines) and the console; `console` is pretty|json|quiet."""
    global _current_sink
    if _current_sink is not None:
        _current_sink.close()
    _current_sink = Sink(events_path, console, stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            Redactor(secrets),
            _current_sink,
        ],
        cache_logger_on_first_use=False,
    )


def shutdown() -> None:
    """Close the events file."""
    global _current_sink
    if _current_sink is not None:
        _current_sink.close()
        _current_sink = None


def get_logger(**context: Any) -> Any:
    """A bound structlog logger carrying `context` on every event."""
    return structlog.get_logger().bind(**context)
