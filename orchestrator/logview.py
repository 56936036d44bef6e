"""Reading a run's events.jsonl: parse, filter, render, and follow it while the run goes on.

The file is written by another process one JSON line at a time, so a reader may
see a line half written: `EventTail` keeps the unfinished remainder until its
newline arrives, and skips lines that are not JSON objects rather than failing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from orchestrator.events import render_pretty

Event = dict[str, Any]
LEVELS = ("debug", "info", "warning", "error", "critical")
RUN_FINISHED = "run_finished"


def events_path(state_dir: Path, run_id: str) -> Path:
    """Where the events of `run_id` are written."""
    return state_dir / "runs" / run_id / "events.jsonl"


def parse_line(line: str) -> Event | None:
    """One event, or None for a blank or damaged line."""
    line = line.strip()
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def level_rank(level: str) -> int:
    """Position of `level` in LEVELS; unknown levels count as info."""
    name = "error" if level == "exception" else level.lower()
    return LEVELS.index(name) if name in LEVELS else LEVELS.index("info")


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: one agent, one event name, a minimum level (each optional)."""

    agent: str | None = None
    event: str | None = None
    level: str | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level.lower() not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; one of {', '.join(LEVELS)}")

    def matches(self, event: Event) -> bool:
        if self.agent is not None and event.get("agent") != self.agent:
            return False
        if self.event is not None and event.get("event") != self.event:
            return False
        if self.level is not None and level_rank(str(event.get("level", "info"))) < level_rank(self.level):
            return False
        return True

    def apply(self, events: Iterable[Event]) -> Iterator[Event]:
        return (e for e in events if self.matches(e))


def format_event(event: Event, *, as_json: bool) -> str:
    """A raw JSON line (for machines) or a readable line (for a person); never control characters."""
    if as_json:
        return json.dumps(event, ensure_ascii=False, default=str)
    return render_pretty(event)


class EventTail:
    """Reads the events appended to a file since the last call; a missing file reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[Event]:
        try:
            with self.path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < self._offset:
                    self._offset, self._partial = 0, b""  # the file was replaced
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete:
            return []
        lines = complete.decode("utf-8", errors="replace").split("\n")
        return [e for e in map(parse_line, lines) if e is not None]


def read_events(path: Path) -> list[Event]:
    """Every complete event in the file so far."""
    return EventTail(path).read_new()


def follow(
    path: Path, run_over: Callable[[], bool], *, poll_s: float = 0.25, grace_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Yield events as they are written until the run ends.

    The run is over when a `run_finished` event appears, or when `run_over()` has been
    true for `grace_s` with nothing new (a run killed before it could write one).
    """
    tail = EventTail(path)
    over_since: float | None = None
    while True:
        new = tail.read_new()
        yield from new
        if any(e.get("event") == RUN_FINISHED for e in new):
            return
        now = time.monotonic()
        if new:
            over_since = None
        if run_over():
            over_since = now if over_since is None else over_since
            if now - over_since >= grace_s:
                return
        sleep(poll_s)
