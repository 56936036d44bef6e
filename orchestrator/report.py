"""The morning report: report.json for machines, report.md for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from orchestrator.lifecycle import AgentRecord, State
from orchestrator.gate import Verdict


def verdict_entry(verdict: Verdict | None) -> dict[str, Any] | None:
    """One gate phase's result (None when it did not run)."""
    if verdict is None:
        return None
    return {
        "passed": verdict.passed, "reason": verdict.reason, "exit_code": verdict.exit_code,
        "tests": verdict.counts.tests, "failures": verdict.counts.failures,
        "errors": verdict.counts.errors, "skipped": verdict.counts.skipped,
        "duration_s": round(verdict.duration_s, 3),
    }


def agent_entry(rec: AgentRecord) -> dict[str, Any]:
    verdict = rec.verdict
    return {
        "agent_id": rec.agent_id,
        "task": rec.task.title,
        "status": str(rec.state),
        "reason": rec.reason,
        "branch": rec.branch,
        "tip": rec.tip or None,
        "container_id": rec.container_id or None,
        "pushed": rec.pushed,
        "pr_url": rec.pr_url or None,
        "tests_passed": rec.tests_passed,
        "tests": verdict_entry(verdict),
        "base_tests": verdict_entry(verdict.base if verdict is not None else None),
        "test_changes": list(rec.test_changes),
        "summary": rec.summary,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "cost_usd": round(rec.cost_usd, 8),
        "steps": rec.steps,
        "duration_s": round(rec.duration_s, 3),
    }


Overlap = tuple[str, str, set[str]]  # two agents and the files both changed


def build(run_id: str, records: Iterable[AgentRecord], *, spent_usd: float, budget_usd: float,
          model: str, overlaps: Iterable[Overlap] = ()) -> dict[str, Any]:
    agents = [agent_entry(r) for r in records]
    overlap_list = [{"agents": [a, b], "files": sorted(files)} for a, b, files in overlaps]
    attention = [
        f"{a['agent_id']}: {a['status']} - {a['reason']}" for a in agents
        if a["status"] not in (State.PUSHED, State.NO_CHANGES)
    ] + [f"{a['agent_id']}: changed existing tests ({', '.join(a['test_changes'])})"
         for a in agents if a["test_changes"]] + [
        f"{o['agents'][0]} and {o['agents'][1]} changed the same files: {', '.join(o['files'][:5])}"
        for o in overlap_list]
    return {
        "run_id": run_id,
        "model": model,
        "agents": agents,
        "totals": {
            "spent_usd": round(spent_usd, 8),
            "budget_usd": budget_usd,
            "prompt_tokens": sum(a["prompt_tokens"] for a in agents),
            "completion_tokens": sum(a["completion_tokens"] for a in agents),
            "pushed": sum(1 for a in agents if a["pushed"]),
            "agents": len(agents),
        },
        "overlaps": overlap_list,
        "needs_attention": attention,
    }


def render_markdown(data: dict[str, Any]) -> str:
    totals = data["totals"]
    lines = [
        f"# fresh-sandbox run {data['run_id']}",
        "",
        f"Model {data['model']}; spent ${totals['spent_usd']:.4f} of ${totals['budget_usd']:.2f}; "
        f"{totals['pushed']} of {totals['agents']} branches pushed.",
        "",
        "| agent | task | status | tests | branch | pushed | PR | tokens in/out | cost | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in data["agents"]:
        tests = a["tests"]["reason"] if a["tests"] else "-"
        lines.append(
            f"| {a['agent_id']} | {_cell(a['task'])} | {a['status']} | {_cell(tests)} | `{a['branch']}` | "
            f"{'yes' if a['pushed'] else 'no'} | {a['pr_url'] or '-'} | {a['prompt_tokens']}/{a['completion_tokens']} | "
            f"${a['cost_usd']:.4f} | {a['duration_s']:.0f}s |"
        )
    if data["needs_attention"]:
        lines += ["", "## Needs a person", ""] + [f"- {_cell(item)}" for item in data["needs_attention"]]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def write(run_dir: Path, run_id: str, records: Iterable[AgentRecord], *, spent_usd: float,
          budget_usd: float, model: str, overlaps: Iterable[Overlap] = ()) -> Path:
    """Write report.json and report.md into the run directory; returns the JSON path."""
    data = build(run_id, records, spent_usd=spent_usd, budget_usd=budget_usd, model=model, overlaps=overlaps)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(data), encoding="utf-8")
    return run_dir / "report.json"
