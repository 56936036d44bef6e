"""The ledger: reserve a call's worst case before it is made, settle the real cost after.

Every model call goes: `reserve(agent, worst_case_usd(...))` -> call -> `settle(res, actual)`.
A reservation is refused (BudgetExhausted) when spent + reserved + the new worst case would
pass the agent's cap or the run's budget, so with honest worst cases the money spent can
never pass either, however many agent threads call at once.

Amounts are kept as integer nano-dollars: reservations round up, the budget rounds down, so
float rounding can never let the sum slip past the limit.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from orchestrator.errors import BudgetExhausted, ConfigError
from orchestrator.prices import Price

_NANO = 1_000_000_000

# Upper bound of the prompt tokens of a chat call, from the request itself:
# - a token covers at least one byte of the text it encodes (byte-level BPE and byte-fallback
#   tokenizers never produce a token for less than one byte), so the UTF-8 bytes of the JSON
#   serialization bound the tokens of the text in it: JSON only adds bytes (quotes, keys,
#   escapes) compared with the text the server renders into the prompt;
# - what the server adds and is not in the JSON (role markers, message separators, the
#   tool-namespace wrapper, a tokenizer's start-of-text token) is a few special tokens per
#   message or tool plus a fixed preamble, covered generously by the overheads below.
PER_MESSAGE_OVERHEAD_TOKENS = 16
FIXED_OVERHEAD_TOKENS = 64

log = structlog.get_logger(__name__)


def worst_case_usd(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_output_tokens: int, price: Price
) -> float:
    """An upper bound of one call's cost: every byte of the request a token, full output."""
    return price.cost(worst_case_prompt_tokens(messages, tools), max_output_tokens)


def worst_case_prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """An upper bound of the prompt tokens of a call (see the comment above)."""
    payload = json.dumps([messages, tools], ensure_ascii=False, separators=(",", ":"))
    overhead = PER_MESSAGE_OVERHEAD_TOKENS * (len(messages) + len(tools)) + FIXED_OVERHEAD_TOKENS
    return len(payload.encode("utf-8")) + overhead


@dataclass(frozen=True)
class Reservation:
    """Money set aside for one call in flight."""

    id: int
    agent_id: str
    usd: float


@dataclass(frozen=True)
class LedgerEntry:
    """One change to the ledger, handed to `on_change` (e.g. for a durable store)."""

    seq: int
    kind: Literal["open", "reserve", "settle"]
    agent_id: str
    reservation_id: int | None
    usd: float | None  # open: the cap (None: no cap); reserve: the worst case; settle: the actual


@dataclass(frozen=True)
class AccountSnapshot:
    agent_id: str
    cap_usd: float | None
    spent_usd: float
    reserved_usd: float


@dataclass(frozen=True)
class LedgerSnapshot:
    """A consistent summary of the ledger at one moment."""

    run_budget_usd: float
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    accounts: tuple[AccountSnapshot, ...]


@dataclass
class _Account:
    cap: int | None
    spent: int = 0
    reserved: int = 0


def _to_nano_up(usd: float) -> int:
    return math.ceil(usd * _NANO)


def _to_nano_down(usd: float) -> int:
    return math.floor(usd * _NANO)


def _usd(nano: int) -> float:
    return nano / _NANO


def _check_amount(usd: float, what: str) -> None:
    if not math.isfinite(usd) or usd < 0:
        raise ConfigError(
            f"{what} must be a non-negative amount of USD, got {usd}", hint="check the budget settings"
        )


class Ledger:
    """Run budget and per-agent caps; safe to use from one thread per agent.

    `on_change` is called with each `LedgerEntry` while the ledger's lock is held, so entries
    arrive in order; it must be quick and must not wait for another thread that uses the
    ledger. If it raises, the error reaches the caller (the change stays in memory).
    """

    def __init__(
        self, run_budget_usd: float, *, on_change: Callable[[LedgerEntry], None] | None = None,
        first_seq: int = 1,
    ) -> None:
        _check_amount(run_budget_usd, "the run budget")
        self.run_budget_usd = run_budget_usd
        self._budget = _to_nano_down(run_budget_usd)
        self._on_change = on_change
        self._lock = threading.RLock()
        self._accounts: dict[str, _Account] = {}
        self._open: dict[int, Reservation] = {}
        self._amounts: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(first_seq)  # a resumed run continues its durable sequence
        self._spent = 0
        self._reserved = 0

    def open_account(self, agent_id: str, cap_usd: float | None) -> None:
        """Register an agent, with its own cap or none (then only the run budget limits it)."""
        if cap_usd is not None:
            _check_amount(cap_usd, f"the cap of agent {agent_id}")
        with self._lock:
            if agent_id in self._accounts:
                raise ValueError(f"agent {agent_id} already has an account")
            cap = None if cap_usd is None else _to_nano_down(cap_usd)
            self._accounts[agent_id] = _Account(cap=cap)
            self._record("open", agent_id, None, cap_usd)

    def preload(self, agent_id: str, spent_usd: float) -> None:
        """Count what an agent spent before a crash (resume); emits no entry, the store has them."""
        _check_amount(spent_usd, f"the earlier spend of agent {agent_id}")
        amount = _to_nano_up(spent_usd)
        with self._lock:
            self._account(agent_id).spent += amount
            self._spent += amount

    def reserve(self, agent_id: str, usd: float) -> Reservation:
        """Set `usd` aside for one call, or raise BudgetExhausted naming the budget that is short."""
        if not math.isfinite(usd) or usd < 0:
            raise ValueError(f"cannot reserve {usd} USD")
        amount = _to_nano_up(usd)
        with self._lock:
            account = self._account(agent_id)
            if account.cap is not None and account.spent + account.reserved + amount > account.cap:
                raise _exhausted(f"agent {agent_id}'s cap", account.cap, account.spent, account.reserved, amount)
            if self._spent + self._reserved + amount > self._budget:
                raise _exhausted("the run budget", self._budget, self._spent, self._reserved, amount)
            reservation = Reservation(id=next(self._ids), agent_id=agent_id, usd=_usd(amount))
            account.reserved += amount
            self._reserved += amount
            self._open[reservation.id] = reservation
            self._amounts[reservation.id] = amount
            self._record("reserve", agent_id, reservation.id, reservation.usd)
            return reservation

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Free the reservation and record what the call really cost."""
        if not math.isfinite(actual_usd) or actual_usd < 0:
            raise ValueError(f"cannot settle a cost of {actual_usd} USD")
        actual = _to_nano_up(actual_usd)
        with self._lock:
            amount = self._close(reservation)
            account = self._accounts[reservation.agent_id]
            account.spent += actual
            self._spent += actual
            self._record("settle", reservation.agent_id, reservation.id, _usd(actual))
        if actual > amount:
            # The worst case was not an upper bound (e.g. the server ignored the output cap).
            # The truth is recorded; later reservations see the overrun and are refused sooner.
            log.warning(
                "budget.overrun",
                agent=reservation.agent_id,
                reserved_usd=_usd(amount),
                actual_usd=_usd(actual),
            )

    def release(self, reservation: Reservation, *, billed: bool = True) -> None:
        """Close the reservation of a call that failed before reporting its usage.

        By default the whole reservation counts as spent: a call that broke mid-way (a
        stream cut off, a timeout) may still have been billed, and we cannot know how much,
        so the worst case is the honest record. Pass `billed=False` only when the request
        certainly never reached the model (e.g. it was refused before sending).
        """
        if billed:
            self.settle(reservation, reservation.usd)
            return
        with self._lock:
            self._close(reservation)
            self._record("settle", reservation.agent_id, reservation.id, 0.0)

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return _usd(self._spent)

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return _usd(self._reserved)

    @property
    def remaining_usd(self) -> float:
        """What the run can still reserve (never negative)."""
        with self._lock:
            return _usd(max(0, self._budget - self._spent - self._reserved))

    def agent_spent(self, agent_id: str) -> float:
        with self._lock:
            return _usd(self._account(agent_id).spent)

    def snapshot(self) -> LedgerSnapshot:
        with self._lock:
            accounts = tuple(
                AccountSnapshot(
                    agent_id=agent_id,
                    cap_usd=None if account.cap is None else _usd(account.cap),
                    spent_usd=_usd(account.spent),
                    reserved_usd=_usd(account.reserved),
                )
                for agent_id, account in self._accounts.items()
            )
            return LedgerSnapshot(
                run_budget_usd=self.run_budget_usd,
                spent_usd=_usd(self._spent),
                reserved_usd=_usd(self._reserved),
                remaining_usd=_usd(max(0, self._budget - self._spent - self._reserved)),
                accounts=accounts,
            )

    def _account(self, agent_id: str) -> _Account:
        try:
            return self._accounts[agent_id]
        except KeyError:
            raise ValueError(f"agent {agent_id} has no account; call open_account first") from None

    def _close(self, reservation: Reservation) -> int:
        if self._open.pop(reservation.id, None) is None:
            raise ValueError(f"reservation {reservation.id} is not open (settled twice?)")
        amount = self._amounts.pop(reservation.id)
        self._accounts[reservation.agent_id].reserved -= amount
        self._reserved -= amount
        return amount

    def _record(
        self, kind: Literal["open", "reserve", "settle"], agent_id: str, reservation_id: int | None, usd: float | None
    ) -> None:
        if self._on_change is not None:
            self._on_change(LedgerEntry(next(self._seq), kind, agent_id, reservation_id, usd))


def _exhausted(which: str, limit: int, spent: int, reserved: int, amount: int) -> BudgetExhausted:
    remaining = max(0, limit - spent - reserved)
    return BudgetExhausted(
        f"the next model call could cost up to ${_usd(amount):.4f}, more than {which} allows",
        hint=(
            f"{which} is ${_usd(limit):.4f}: ${_usd(spent):.4f} spent, ${_usd(reserved):.4f} "
            f"reserved by calls in flight, ${_usd(remaining):.4f} remaining"
        ),
    )
