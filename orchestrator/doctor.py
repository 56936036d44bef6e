"""`fresh-sandbox doctor`: check everything a run needs and say how to fix what is missing.

Each check returns `Check`s (ok, warn or fail, with a fix); no check raises, so one
broken piece never hides the others. Only `fail` makes the command exit non-zero.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

OK, WARN, FAIL = "ok", "warn", "fail"
MODEL_TIMEOUT_S = 5.0
REMOTE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn or fail
    detail: str
    fix: str = ""


def docker_checks(image: str, runtime: str | None) -> list[Check]:
    """The daemon, its storage and disk quota, the agent image and the gVisor runtime."""
    from sandbox.base import SandboxError
    from sandbox.docker import BUILD_HINT, DAEMON_HINT, connect

    try:
        client = connect()
        info: dict[str, Any] = client.info()
        version = client.version().get("Version", "?")
    except SandboxError as exc:
        return [Check("docker", FAIL, exc.message, DAEMON_HINT)]
    checks = [
        Check("docker", OK, f"daemon {version} answers ({info.get('OperatingSystem', '?')}, "
                            f"cgroup v{info.get('CgroupVersion', '?')})"),
        Check("disk quota", OK,
              f"storage driver {info.get('Driver', '?')}; the sandbox root is read-only and the workspace, "
              "/tmp and home are sized tmpfs mounts, so an agent's disk use is capped whether or not "
              "the driver enforces quotas (tmpfs counts against the container's memory)"),
    ]
    try:
        client.images.get(image)
        checks.append(Check("image", OK, f"{image} present"))
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound or an API error
        checks.append(Check("image", FAIL, f"{image} not found", BUILD_HINT))
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    if "runsc" in runtimes:
        checks.append(Check("runsc", OK, "gVisor runtime registered (policy runtime = \"runsc\" uses it)"))
    else:
        status = FAIL if runtime == "runsc" else WARN
        checks.append(Check("runsc", status, f"gVisor not registered (runtimes: {', '.join(runtimes) or '-'})",
                            "optional: install runsc and register it in /etc/docker/daemon.json for a "
                            "stronger sandbox; runc with the hardening flags is used otherwise"))
    return checks


def model_checks(model: str, cli_price: str | None, overrides: dict[str, Any]) -> list[Check]:
    """The endpoint's variables, a models.list() call, and a price for the model."""
    checks: list[Check] = []
    key, base_url = os.environ.get("OPENAI_API_KEY", ""), os.environ.get("OPENAI_BASE_URL", "")
    if not key:
        checks.append(Check("model key", FAIL, "OPENAI_API_KEY is not set",
                            "export OPENAI_API_KEY=... (any value for a local server that needs none)"))
    else:
        checks.append(Check("model key", OK, "OPENAI_API_KEY is set"))
        checks.append(_list_models(model, key, base_url))
    checks.append(_price(model, cli_price, overrides))
    return checks


def _list_models(model: str, key: str, base_url: str) -> Check:
    import openai

    where = base_url or "https://api.openai.com/v1 (OPENAI_BASE_URL not set)"
    try:
        client = openai.OpenAI(api_key=key, base_url=base_url or None, timeout=MODEL_TIMEOUT_S, max_retries=0)
        ids = [m.id for m in client.models.list()]
    except openai.AuthenticationError:
        return Check("model endpoint", FAIL, f"{where} refused the key", "check OPENAI_API_KEY")
    except openai.APIError as exc:
        return Check("model endpoint", FAIL, f"{where}: {type(exc).__name__}: {exc}",
                     "check OPENAI_BASE_URL and that the server is up (and reachable through any proxy)")
    if model in ids or model.split("/", 1)[-1] in ids:
        return Check("model endpoint", OK, f"{where} answers and lists {model}")
    return Check("model endpoint", WARN, f"{where} answers but does not list {model} ({len(ids)} models)",
                 "check the model name (--model or the policy's model)")


def _price(model: str, cli_price: str | None, overrides: dict[str, Any]) -> Check:
    from orchestrator.errors import ConfigError
    from orchestrator.prices import parse_price, resolve_price

    try:
        price = resolve_price(model, overrides=overrides, cli_price=parse_price(cli_price) if cli_price else None)
    except ConfigError as exc:
        return Check("model price", FAIL, exc.message, exc.hint)
    return Check("model price", OK, f"{model}: ${price.input_per_mtok:g} in / ${price.output_per_mtok:g} out "
                                    "per million tokens")


def repo_checks(repo: Path, state_dir_name: str = ".fresh") -> list[Check]:
    """The repository a run would target, its `origin` remote, and the GitHub token."""
    from orchestrator import gitops
    from orchestrator.errors import PreflightError

    try:
        user = gitops.inspect_user_repo(repo, state_dir_name=state_dir_name)
    except PreflightError as exc:
        return [Check("git repo", FAIL, exc.message, exc.hint), _token(None)]
    checks = [Check("git repo", OK, f"{user.path} on {user.branch} at {user.head[:12]}, committed")]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    try:
        proc = subprocess.run(["git", "ls-remote", "--heads", user.remote_url], cwd=user.path, env=env,
                              capture_output=True, text=True, timeout=REMOTE_TIMEOUT_S, check=False)
        answer = proc.returncode == 0
        detail = proc.stderr.strip().splitlines()[-1:] if not answer else []
    except subprocess.TimeoutExpired:
        answer, detail = False, [f"no answer in {REMOTE_TIMEOUT_S:.0f}s"]
    if answer:
        checks.append(Check("git remote", OK, f"origin {user.remote_url} answers"))
    else:
        checks.append(Check("git remote", FAIL, f"origin {user.remote_url} does not answer: {' '.join(detail)}",
                            "check the URL (`git remote -v`) and your credentials: branches are pushed there"))
    checks.append(_token(user.remote_url))
    return checks


def _token(remote_url: str | None) -> Check:
    has = bool(os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN"))
    on_github = bool(remote_url and "github.com" in remote_url)
    if has:
        return Check("github token", OK, "GITHUB_TOKEN is set (kept on the host, never given to a sandbox)")
    if on_github:
        return Check("github token", WARN, "GITHUB_TOKEN is not set: branches are pushed but no pull request "
                                           "is opened", "export GITHUB_TOKEN=... with pull-request write access")
    return Check("github token", OK, "not needed: the remote is not on GitHub")


def run_all(repo: Path, *, image: str, runtime: str | None, model: str, cli_price: str | None,
            price_overrides: dict[str, Any]) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [*docker_checks(image, runtime), *model_checks(model, cli_price, price_overrides), *repo_checks(repo)]


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
