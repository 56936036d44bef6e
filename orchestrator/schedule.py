"""Run windows: overnight runs stop starting work when the office opens, and drain.

Times are local wall-clock times. A window such as 09:00-18:00 on weekdays is the
*work hours*; `overnight` runs only outside it, `workhours` only inside it, `any`
always.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from orchestrator.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MODES = ("any", "overnight", "workhours")


def parse_clock(text: str) -> time:
    """'09:00' or '09:00:30'."""
    try:
        return time.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a time of day", hint="write HH:MM or HH:MM:SS") from exc


@dataclass(frozen=True)
class Schedule:
    """When a run may work."""

    mode: str = "any"
    work_start: time = time(9, 0)
    work_end: time = time(18, 0)
    work_days: frozenset[int] = frozenset(range(5))  # Monday = 0

    @classmethod
    def parse(cls, mode: str, work_hours: str, work_days: list[str]) -> Schedule:
        if mode not in MODES:
            raise ConfigError(f"schedule {mode!r} is not one of {', '.join(MODES)}")
        start_text, sep, end_text = work_hours.partition("-")
        if not sep:
            raise ConfigError(f"work_hours {work_hours!r} must look like 09:00-18:00")
        days = set()
        for day in work_days:
            if day.lower()[:3] not in DAYS:
                raise ConfigError(f"work day {day!r} is not one of {', '.join(DAYS)}")
            days.add(DAYS.index(day.lower()[:3]))
        return cls(mode, parse_clock(start_text), parse_clock(end_text), frozenset(days))

    def in_work_hours(self, now: datetime) -> bool:
        if now.weekday() not in self.work_days:
            return False
        return self.work_start <= now.time() < self.work_end

    def is_open(self, now: datetime) -> bool:
        """Whether work may go on at `now`."""
        if self.mode == "any":
            return True
        inside = self.in_work_hours(now)
        return inside if self.mode == "workhours" else not inside

    def next_change(self, now: datetime, horizon: timedelta = timedelta(days=8)) -> datetime | None:
        """The next moment `is_open` flips, to the second (None for `any`)."""
        if self.mode == "any":
            return None
        state = self.is_open(now)
        # Candidate instants: each day's work start and end; the earliest one that flips wins.
        day = now.date()
        candidates = []
        while datetime.combine(day, time()) <= now + horizon:
            for clock in (self.work_start, self.work_end):
                moment = datetime.combine(day, clock, tzinfo=now.tzinfo)
                if moment > now:
                    candidates.append(moment)
            day += timedelta(days=1)
        for moment in sorted(candidates):
            if self.is_open(moment) != state:
                return moment
        return None
