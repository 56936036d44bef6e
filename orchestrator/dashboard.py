"""The live view of a run: one row per agent, the budget, approvals waiting, recent events.

`render` is a pure function of the store's rows and the events read so far, so it
is tested by printing to a recorded console. `follow` polls the store and tails
the events file (it only reads, so it never slows the supervisor) and redraws
about twice a second until the run ends; without a terminal it prints one plain
line per agent change instead.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.lifecycle import FINAL_STATES
from orchestrator.events import render_pretty
from orchestrator.logview import EventTail
from orchestrator.tools import strip_control

Row = Mapping[str, Any]
FINAL = frozenset(str(state) for state in FINAL_STATES)
STATE_STYLE = {"pushed": "green", "awaiting_approval": "bold yellow", "tests_failed": "red", "failed": "red",
               "budget_exhausted": "magenta", "timed_out": "magenta", "refused": "red", "stopped": "dim",
               "rejected": "dim", "no_changes": "dim"}
RECENT_EVENTS = 6


def duration(seconds: float) -> str:
    """A short human duration: 42s, 3m05s, 2h07m."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def agent_elapsed(agent: Row, now: float) -> float:
    """Seconds an agent has run; a finished agent stops at its last update."""
    end = agent["updated_at"] if agent["state"] in FINAL else now
    return float(end) - float(agent["started_at"])


def time_left(run: Row, now: float) -> float | None:
    """Seconds until the run's wall-clock limit, when the run recorded one (`deadline` or `hours`)."""
    info = run.get("info") or {}
    if run.get("status") != "running" or not isinstance(info, Mapping):
        return None
    if "deadline" in info:
        return float(info["deadline"]) - now
    if "hours" in info:
        return float(run["started_at"]) + float(info["hours"]) * 3600 - now
    return None


def spent(run: Row, agents: Iterable[Row]) -> float:
    """The run's spend: the store's figure, or the agents' sum while the run has not settled it."""
    return max(float(run.get("spent_usd") or 0.0), sum(float(a["cost_usd"]) for a in agents))


def _header(run: Row, now: float) -> Text:
    info = run.get("info") or {}
    model = info.get("model", "") if isinstance(info, Mapping) else ""
    end = run.get("ended_at") or now
    head = Text(f"run {run['run_id']}", style="bold")
    head.append(f"  {run['status']}", style="green" if run["status"] == "running" else "cyan")
    head.append(f"  model {model}  elapsed {duration(float(end) - float(run['started_at']))}")
    left = time_left(run, now)
    if left is not None:
        head.append(f"  time left {duration(left)}", style="yellow" if left < 600 else "")
    return head


def _budget(run: Row, agents: Sequence[Row]) -> Table:
    used, budget = spent(run, agents), float(run["budget_usd"])
    ratio = used / budget if budget else 0.0
    grid = Table.grid(padding=(0, 1))
    grid.add_row("budget", ProgressBar(total=budget or 1.0, completed=min(used, budget), width=40,
                                       complete_style="red" if ratio > 0.9 else "green"),
                 f"${used:.4f} of ${budget:.2f} ({ratio:.0%})")
    return grid


def _agents(agents: Sequence[Row], now: float) -> Table:
    table = Table()
    for name in ("agent", "state", "task"):
        table.add_column(name)
    for name in ("step", "elapsed", "cost"):
        table.add_column(name, justify="right")
    for a in agents:
        table.add_row(a["agent_id"], Text(a["state"], style=STATE_STYLE.get(a["state"], "")),
                      strip_control(a["task"])[:48], str(a["steps"]), duration(agent_elapsed(a, now)),
                      f"${float(a['cost_usd']):.4f}")
    return table


def render(run: Row, agents: Sequence[Row], events: Sequence[Mapping[str, Any]], now: float) -> RenderableType:
    """The whole view for one moment: header, budget bar, agents, approvals waiting, recent events."""
    parts: list[RenderableType] = [_header(run, now), _budget(run, agents), _agents(agents, now)]
    waiting = [a["agent_id"] for a in agents if a["state"] == "awaiting_approval"]
    if waiting:
        parts.append(Text("awaiting approval: " + ", ".join(waiting) +
                          f"  (fresh-sandbox approve {waiting[0]} | reject {waiting[0]}; "
                          f"inspect/diff/shell to review)", style="bold yellow"))
    if events:
        parts.append(Text("recent events", style="bold"))
        parts += [Text(render_pretty(dict(e)), style="dim", no_wrap=True, overflow="ellipsis")
                  for e in events[-RECENT_EVENTS:]]
    return Group(*parts)


def plain_changes(seen: dict[str, tuple[str, int]], agents: Sequence[Row], now: float) -> list[str]:
    """One line per agent whose state or step changed since `seen` (which is updated)."""
    lines = []
    for a in agents:
        key = (a["state"], int(a["steps"]))
        if seen.get(a["agent_id"]) != key:
            seen[a["agent_id"]] = key
            lines.append(f"{a['agent_id']} {a['state']} step={a['steps']} cost=${float(a['cost_usd']):.4f} "
                         f"elapsed={duration(agent_elapsed(a, now))} task={strip_control(a['task'])[:60]}")
    return lines


def follow(
    read_state: Callable[[], tuple[Row, Sequence[Row]]], events_file: Path, *,
    console: Console | None = None, refresh_s: float = 0.5, run_over: Callable[[], bool] | None = None,
) -> None:
    """Show the run until it ends: a live view on a terminal, plain lines otherwise.

    `read_state` returns the run row (with `info` decoded) and its agents' rows;
    the run ends when `run_over()` says so (default: its status is no longer running).
    """
    from rich.live import Live

    console = console or Console()
    tail = EventTail(events_file)
    recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)

    def over(run: Row) -> bool:
        return run_over() if run_over is not None else run["status"] != "running"

    if not console.is_terminal:
        seen: dict[str, tuple[str, int]] = {}
        while True:
            run, agents = read_state()
            for line in plain_changes(seen, agents, time.time()):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            if over(run):
                console.print(f"run {run['run_id']} {run['status']}: spent ${spent(run, agents):.4f} "
                              f"of ${float(run['budget_usd']):.2f}", markup=False, highlight=False)
                return
            time.sleep(refresh_s)
    run, agents = read_state()
    with Live(render(run, agents, [], time.time()), console=console, auto_refresh=False) as live:
        while True:
            run, agents = read_state()
            recent.extend(tail.read_new())
            live.update(render(run, agents, list(recent), time.time()), refresh=True)
            if over(run):
                return
            time.sleep(refresh_s)
