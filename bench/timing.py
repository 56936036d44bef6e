"""Shared by the benchmarks: wall-clock timing of repeated calls."""

from __future__ import annotations

import time
from typing import Callable


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Wall times of n calls, in seconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
