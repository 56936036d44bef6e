"""Policies and run options: pydantic models at the edge, merged with CLI flags.

A policy is a TOML file (see `policies/`). Flags given on the command line win
over the policy; `RunConfig` is the frozen result the supervisor runs with.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.schedule import Schedule

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_TEST_COMMAND = "python3 -m pytest -q"
MAX_RUN_HOURS = 8.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsPolicy(_Strict):
    """Resource limits applied to every sandbox."""

    cpus: float = Field(1.0, gt=0, le=64)
    memory_mb: int = Field(2048, ge=128)
    pids: int = Field(256, ge=16)
    workspace_mb: int = Field(1024, ge=16)
    tmp_mb: int = Field(256, ge=16)
    home_mb: int = Field(64, ge=8)


class PricePolicy(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Policy(_Strict):
    """Everything a run may be told by a policy file."""

    name: str = "default"
    description: str = ""
    model: str = DEFAULT_MODEL
    prices: dict[str, PricePolicy] = Field(default_factory=dict)
    budget_usd: float = Field(2.0, gt=0)
    agent_budget_usd: float | None = Field(None, gt=0)
    agents: int = Field(10, ge=1, le=200)
    max_steps: int = Field(40, ge=1)
    max_output_tokens: int = Field(4096, ge=64)
    command_timeout_s: float = Field(120.0, gt=0)
    output_cap_bytes: int = Field(64 * 1024, ge=1024)
    setup_command: str | None = None
    test_command: str = DEFAULT_TEST_COMMAND
    test_timeout_s: float = Field(900.0, gt=0)
    network: bool = False
    approval: bool = True
    hours: float = Field(MAX_RUN_HOURS, gt=0)
    max_hours: float = Field(MAX_RUN_HOURS, gt=0)
    agent_timeout_minutes: float = Field(60.0, gt=0)
    runtime: str | None = None
    image: str = "fresh-sandbox/agent:latest"
    limits: LimitsPolicy = Field(default_factory=lambda: LimitsPolicy.model_validate({}))
    allow_test_changes: bool = False
    max_file_bytes: int = Field(5 * 1024 * 1024, ge=1)  # a bigger file in a commit is refused
    base_tests: bool = True  # the base commit's existing tests also run against the change
    setup_network: bool = False  # setup_command may use the network; the agent phase never does
    egress_allow: list[str] = Field(default_factory=list)  # hosts the agent may reach through the proxy
    schedule: str = "any"  # any | overnight | workhours
    work_hours: str = "09:00-18:00"
    work_days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    min_useful_calls: int = Field(3, ge=1)  # an agent starts only if the budget covers this many calls
    serialise_overlapping: bool = False  # tasks naming the same files never run at once
    pr_labels: list[str] = Field(default_factory=lambda: ["autonomous"])

    @field_validator("test_command")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


    @model_validator(mode="after")
    def _schedule_parses(self) -> "Policy":
        from orchestrator.schedule import Schedule

        try:
            Schedule.parse(self.schedule, self.work_hours, self.work_days)
        except ConfigError as exc:
            raise ValueError(exc.message) from exc
        return self

    def run_schedule(self) -> "Schedule":
        from orchestrator.schedule import Schedule

        return Schedule.parse(self.schedule, self.work_hours, self.work_days)


def available_policies() -> list[str]:
    """Names of the policies shipped in `policies/`."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.toml"))


def load_policy(name_or_path: str | None) -> Policy:
    """Load a shipped policy by name or a policy file by path; ConfigError says what is wrong."""
    if name_or_path is None:
        name_or_path = "default"
    path = Path(name_or_path)
    if not path.suffix:
        path = POLICY_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(available_policies()) or "none"
        raise ConfigError(
            f"policy {name_or_path!r} not found",
            hint=f"name a shipped policy ({known}) or the path of a .toml file",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy file {path} is not valid TOML: {exc}", hint="fix the file") from exc
    return parse_policy(data, source=str(path))


def parse_policy(data: dict[str, Any], source: str = "policy") -> Policy:
    """Validate a policy mapping, turning pydantic's report into one readable line."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}", hint="see docs/policies.md for the fields") from exc


@dataclass(frozen=True)
class TaskSpec:
    """One piece of work for one agent."""

    title: str
    description: str = ""
    kind: str = "task"  # feature | tests | docs | task: picks the prompt
    key: str = ""  # stable identity of a discovered or filed task, for claims across runs
    files: tuple[str, ...] = ()  # files of interest, for serialising overlapping tasks


@dataclass(frozen=True)
class RunConfig:
    """The effective configuration of one run: policy merged with flags."""

    repo: Path
    state_dir: Path
    policy: Policy
    tasks: tuple[TaskSpec, ...]
    keep_containers: bool = False
    base_url: str | None = None
    price_override: tuple[float, float] | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def agent_budget_usd(self) -> float:
        """Per-agent cap: the policy's, else the run budget shared by the agents that run at once."""
        if self.policy.agent_budget_usd is not None:
            return min(self.policy.agent_budget_usd, self.policy.budget_usd)
        return self.policy.budget_usd / max(1, min(self.policy.agents, len(self.tasks)))


def override(policy: Policy, **flags: Any) -> Policy:
    """Apply CLI flags (None means 'not given') on top of a policy, re-validating the result."""
    given = {key: value for key, value in flags.items() if value is not None}
    merged = policy.model_dump() | given
    result = parse_policy(merged, source="flags")
    if result.hours > result.max_hours:
        raise ConfigError(
            f"--hours {result.hours} is over the protective maximum of {result.max_hours} h",
            hint="lower --hours, or raise max_hours in a policy file",
        )
    return result
