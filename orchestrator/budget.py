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
    usd: float


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
        raise ConfigError(f"{what} must be a non-negative amount of USD, got {usd}", hint="check the budget settings")
