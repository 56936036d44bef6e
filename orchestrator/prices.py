"""Model prices in USD per million tokens: from the CLI, the policy, or the genai-prices table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.errors import ConfigError

_PRICE_HINT = "pass --price IN/OUT (USD per million tokens) or add it to the policy's prices"


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for value in (self.input_per_mtok, self.output_per_mtok):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"price {self.input_per_mtok}/{self.output_per_mtok} is not usable",
                    hint="prices are non-negative USD per million tokens, e.g. 0.4/1.6",
                )

    def cost(self, usage_prompt: int, usage_completion: int) -> float:
        """USD for this many prompt and completion tokens."""
        return (usage_prompt * self.input_per_mtok + usage_completion * self.output_per_mtok) / 1_000_000


def parse_price(text: str) -> Price:
    """Parse the CLI form "IN/OUT", e.g. "0.4/1.6" (USD per million tokens)."""
    parts = text.replace("$", "").split("/")
    bad = ConfigError(
        f"cannot read price {text!r}",
        hint="write --price IN/OUT in USD per million tokens, e.g. --price 0.4/1.6",
    )
    if len(parts) != 2:
        raise bad
    try:
        numbers = [float(part.strip()) for part in parts]
    except ValueError:
        raise bad from None
    if not all(math.isfinite(number) and number >= 0 for number in numbers):
        raise bad
    return Price(numbers[0], numbers[1])


def resolve_price(
    model: str,
    *,
    overrides: Mapping[str, Price] | None = None,
    cli_price: Price | None = None,
) -> Price:
    """The price to meter `model` with: --price, then the policy's prices, then genai-prices."""
    if cli_price is not None:
        return cli_price
    bare = _without_prefix(model)
    for name in (model, bare):
        if overrides and name in overrides:
            return overrides[name]
    price = table_price(model)
    if price is None:
        raise ConfigError(f"no price known for model {model}", hint=_PRICE_HINT)
    return price


def _without_prefix(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


@lru_cache(maxsize=64)
def table_price(model: str) -> Price | None:
    """The price in the genai-prices table, or None.

    "provider/model" is tried as that provider's model first, then as a whole name (routers
    such as OpenRouter use such names), then without the prefix. Tiered prices are read at
    one million tokens, i.e. the upper tier, which keeps the budget on the safe side.
    """
    attempts: list[tuple[str, str | None]] = [(model, None)]
    if "/" in model:
        prefix, bare = model.split("/", 1)
        attempts = [(bare, prefix), (model, None), (bare, None)]
    for model_ref, provider_id in attempts:
        price = _lookup(model_ref, provider_id)
        if price is not None:
            return price
    return None


def _lookup(model_ref: str, provider_id: str | None) -> Price | None:
    import genai_prices  # lazily: loading the price table takes a moment

    usage = genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    try:
        calculation = genai_prices.calc_price(usage, model_ref, provider_id=provider_id)
    except (LookupError, ValueError, ArithmeticError):
        return None
    try:
        return Price(float(calculation.input_price), float(calculation.output_price))
    except ConfigError:
        return None
