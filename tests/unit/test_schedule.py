from __future__ import annotations

from datetime import datetime

import pytest

from orchestrator.errors import ConfigError
from orchestrator.schedule import Schedule

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def test_overnight_is_open_outside_work_hours_and_weekends() -> None:
    s = Schedule.parse("overnight", "09:00-18:00", WEEKDAYS)
    assert not s.is_open(datetime(2026, 11, 27, 10, 0))  # Friday morning
    assert s.is_open(datetime(2026, 11, 27, 18, 0))
    assert s.is_open(datetime(2026, 11, 28, 12, 0))  # Saturday
    assert s.next_change(datetime(2026, 11, 27, 20, 0)) == datetime(2026, 11, 30, 9, 0)  # Monday


def test_workhours_mode_and_seconds() -> None:
    s = Schedule.parse("workhours", "09:00:00-09:00:30", WEEKDAYS)
    assert s.is_open(datetime(2026, 11, 26, 9, 0, 10))
    assert s.next_change(datetime(2026, 11, 26, 9, 0, 10)) == datetime(2026, 11, 26, 9, 0, 30)


def test_any_is_always_open() -> None:
    s = Schedule()
    assert s.is_open(datetime(2026, 11, 27, 10, 0)) and s.next_change(datetime(2026, 11, 27)) is None


@pytest.mark.parametrize("mode,hours,days", [("nightly", "09:00-18:00", WEEKDAYS), ("any", "9-18", WEEKDAYS),
                                             ("any", "09:00-18:00", ["funday"])])
def test_bad_schedules_are_config_errors(mode: str, hours: str, days: list[str]) -> None:
    with pytest.raises(ConfigError):
        Schedule.parse(mode, hours, days)
