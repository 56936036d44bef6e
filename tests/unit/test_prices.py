from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.prices import Price, parse_price, resolve_price, table_price


def test_cost_is_per_million_tokens() -> None:
    price = Price(0.4, 1.6)
    assert price.cost(1_000_000, 0) == pytest.approx(0.4)
    assert price.cost(1000, 500) == pytest.approx(0.0004 + 0.0008)
    assert price.cost(0, 0) == 0


@pytest.mark.parametrize(("text", "expected"), [("0.4/1.6", Price(0.4, 1.6)), (" 3 / 15 ", Price(3, 15)), ("$0/$0", Price(0, 0))])
def test_parse_price(text: str, expected: Price) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize("text", ["", "0.4", "0.4/1.6/2", "a/b", "-1/2", "1/-2", "nan/1", "inf/1", "1/"])
def test_parse_price_rejects_bad_input(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_price(text)
    assert "--price IN/OUT" in info.value.hint


def test_negative_price_cannot_be_built() -> None:
    with pytest.raises(ConfigError):
        Price(-0.1, 1)


def test_real_table_prices() -> None:
    assert table_price("gpt-4.1-mini") == Price(0.4, 1.6)
    assert table_price("gpt-4o-mini") == Price(0.15, 0.6)


def test_provider_prefix_and_dated_names() -> None:
    assert resolve_price("openai/gpt-4o-mini") == Price(0.15, 0.6)
    assert resolve_price("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)


def test_cli_price_wins_then_overrides() -> None:
    cli = Price(9, 9)
    policy = {"gpt-4o-mini": Price(1, 2)}
    assert resolve_price("gpt-4o-mini", overrides=policy, cli_price=cli) == cli
    assert resolve_price("gpt-4o-mini", overrides=policy) == Price(1, 2)
    assert resolve_price("openai/gpt-4o-mini", overrides=policy) == Price(1, 2)
    assert resolve_price("local/my-model", overrides={"local/my-model": Price(0, 0)}) == Price(0, 0)


def test_unknown_model_is_a_config_error_with_hint() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_price("no-such-model-xyz")
    assert "no price known for model no-such-model-xyz" in info.value.message
    assert "--price IN/OUT" in info.value.hint
    with pytest.raises(ConfigError):
        resolve_price("nowhere/no-such-model-xyz")
