from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import RunConfig, TaskSpec, available_policies, load_policy, override
from orchestrator.errors import ConfigError


def test_shipped_policies_load() -> None:
    assert {"default", "overnight", "strict"} <= set(available_policies())
    for name in available_policies():
        assert load_policy(name).name == name


def test_unknown_field_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("budget_usd = 1\nbuget = 2\n[limits]\ncpus = -1\n")
    with pytest.raises(ConfigError) as info:
        load_policy(str(bad))
    assert "buget" in info.value.message and "limits.cpus" in info.value.message


def test_bad_toml_and_missing_policy(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("budget_usd = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_policy("nope")


def test_flags_override_and_are_validated() -> None:
    policy = override(load_policy("default"), budget_usd=0.5, model=None, approval=False)
    assert policy.budget_usd == 0.5 and policy.model == "gpt-4.1-mini" and not policy.approval
    with pytest.raises(ConfigError):
        override(load_policy("default"), budget_usd=-1)
    with pytest.raises(ConfigError, match="protective maximum"):
        override(load_policy("default"), hours=9)


def test_agent_budget_defaults_to_a_share_of_the_run() -> None:
    tasks = tuple(TaskSpec(f"t{i}") for i in range(4))
    config = RunConfig(repo=Path("."), state_dir=Path("."), policy=override(load_policy("default"), budget_usd=2.0),
                       tasks=tasks)
    assert config.agent_budget_usd == 0.5
