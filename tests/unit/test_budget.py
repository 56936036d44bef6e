from __future__ import annotations

import json
import threading

import pytest

from orchestrator.budget import Ledger, LedgerEntry, worst_case_prompt_tokens, worst_case_usd
from orchestrator.errors import BudgetExhausted, ConfigError
from orchestrator.prices import Price
from orchestrator.tools import TOOL_SCHEMAS


def test_reserve_then_settle_records_the_actual_cost() -> None:
    ledger = Ledger(1.0)
    ledger.open_account("a1", None)
    reservation = ledger.reserve("a1", 0.3)
    assert ledger.reserved_usd == pytest.approx(0.3)
    assert ledger.remaining_usd == pytest.approx(0.7)
    ledger.settle(reservation, 0.1)
    assert ledger.reserved_usd == 0
    assert ledger.spent_usd == pytest.approx(0.1)
    assert ledger.agent_spent("a1") == pytest.approx(0.1)
    assert ledger.remaining_usd == pytest.approx(0.9)


def test_run_budget_refuses_with_a_hint_naming_it() -> None:
    ledger = Ledger(1.0)
    ledger.open_account("a1", None)
    ledger.settle(ledger.reserve("a1", 0.6), 0.6)
    with pytest.raises(BudgetExhausted) as info:
        ledger.reserve("a1", 0.5)
    assert "run budget" in info.value.message
    assert "$0.4000 remaining" in info.value.hint
    ledger.reserve("a1", 0.4)  # exactly up to the limit is allowed


def test_agent_cap_refuses_before_the_run_budget() -> None:
    ledger = Ledger(10.0)
    ledger.open_account("a1", 0.5)
    ledger.open_account("a2", None)
    held = ledger.reserve("a1", 0.3)
    with pytest.raises(BudgetExhausted) as info:
        ledger.reserve("a1", 0.3)
    assert "agent a1's cap" in info.value.message
    assert "$0.3000 reserved" in info.value.hint
    assert "$0.2000 remaining" in info.value.hint
    ledger.reserve("a2", 5.0)  # the other agent is not limited by a1's cap
    ledger.settle(held, 0.0)
    ledger.reserve("a1", 0.5)


def test_release_counts_the_reservation_as_spent_unless_not_billed() -> None:
    ledger = Ledger(1.0)
    ledger.open_account("a1", None)
    ledger.release(ledger.reserve("a1", 0.2))
    assert ledger.spent_usd == pytest.approx(0.2)
    ledger.release(ledger.reserve("a1", 0.2), billed=False)
    assert ledger.spent_usd == pytest.approx(0.2)
    assert ledger.reserved_usd == 0


def test_a_reservation_closes_once() -> None:
    ledger = Ledger(1.0)
    ledger.open_account("a1", None)
    reservation = ledger.reserve("a1", 0.1)
    ledger.settle(reservation, 0.1)
    with pytest.raises(ValueError):
        ledger.settle(reservation, 0.1)
    with pytest.raises(ValueError):
        ledger.release(reservation)


def test_overrun_is_recorded_as_the_truth() -> None:
    ledger = Ledger(1.0)
    ledger.open_account("a1", None)
    ledger.settle(ledger.reserve("a1", 0.1), 0.3)
    assert ledger.spent_usd == pytest.approx(0.3)
    assert ledger.remaining_usd == pytest.approx(0.7)


def test_misuse_is_refused() -> None:
    ledger = Ledger(1.0)
    with pytest.raises(ValueError):
        ledger.reserve("ghost", 0.1)
    ledger.open_account("a1", None)
    with pytest.raises(ValueError):
        ledger.open_account("a1", None)
    with pytest.raises(ValueError):
        ledger.reserve("a1", -1)
    with pytest.raises(ConfigError):
        Ledger(-1)
    with pytest.raises(ConfigError):
        ledger.open_account("a2", float("nan"))


def test_on_change_sees_every_entry_in_order() -> None:
    entries: list[LedgerEntry] = []
    ledger = Ledger(1.0, on_change=entries.append)
    ledger.open_account("a1", 0.5)
    reservation = ledger.reserve("a1", 0.25)
    ledger.settle(reservation, 0.125)
    assert [(e.seq, e.kind, e.usd) for e in entries] == [(1, "open", 0.5), (2, "reserve", 0.25), (3, "settle", 0.125)]
    assert entries[1].reservation_id == entries[2].reservation_id == reservation.id


def test_snapshot_is_consistent() -> None:
    ledger = Ledger(2.0)
    ledger.open_account("a1", 1.0)
    ledger.open_account("a2", None)
    ledger.settle(ledger.reserve("a1", 0.5), 0.25)
    ledger.reserve("a2", 0.5)
    snap = ledger.snapshot()
    assert (snap.spent_usd, snap.reserved_usd, snap.remaining_usd) == (0.25, 0.5, 1.25)
    assert [(a.agent_id, a.cap_usd, a.spent_usd, a.reserved_usd) for a in snap.accounts] == [
        ("a1", 1.0, 0.25, 0.0),
        ("a2", None, 0.0, 0.5),
    ]


def test_many_threads_never_spend_past_the_budget() -> None:
    budget = 1.0
    ledger = Ledger(budget)
    agents = [f"a{i}" for i in range(16)]
    for agent in agents:
        ledger.open_account(agent, 0.2)
    start = threading.Barrier(len(agents))

    def work(agent: str) -> None:
        start.wait()
        for _ in range(200):
            try:
                reservation = ledger.reserve(agent, 0.003)
            except BudgetExhausted:
                return
            # Settle at or below the worst case, as real calls do; every third call breaks.
            if _ % 3 == 0:
                ledger.release(reservation)
            else:
                ledger.settle(reservation, 0.001)

    threads = [threading.Thread(target=work, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = ledger.snapshot()
    assert snap.reserved_usd == 0
    assert snap.spent_usd <= budget
    assert snap.spent_usd > budget - 0.003 * len(agents)  # it did run until exhausted
    for account in snap.accounts:
        assert account.spent_usd <= 0.2


def test_worst_case_bounds_the_prompt_by_its_bytes() -> None:
    messages = [
        {"role": "system", "content": "You are a careful engineer."},
        {"role": "user", "content": "Fix the bug in ünïcödé.py 🐛"},
    ]
    tokens = worst_case_prompt_tokens(messages, TOOL_SCHEMAS)
    content_bytes = len(json.dumps(messages, ensure_ascii=False).encode()) + len(json.dumps(TOOL_SCHEMAS).encode())
    assert tokens >= content_bytes - 10  # compact separators only drop spaces
    assert tokens > len("Fix the bug in ünïcödé.py 🐛".encode())
    price = Price(1.0, 2.0)
    usd = worst_case_usd(messages, TOOL_SCHEMAS, 1000, price)
    assert usd == pytest.approx(price.cost(tokens, 1000))
    assert usd > price.cost(0, 1000)
