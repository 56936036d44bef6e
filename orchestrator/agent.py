"""One agent: its lifecycle and the tool loop.

    starting -> analysis -> implementation -> testing -> awaiting_approval -> pushing -> pushed
                    \\______________\\_____________\\________________\\________> a final state

The agent never decides whether it is done: `submit` hands over to the
supervisor's finishing steps (commit leftovers, import, gate, approval, push).
Limits (budget, steps, wall clock, a stop request) end the loop through named
exceptions, and the work so far is still imported so nothing is lost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import structlog

from orchestrator import forge, gitops, prompts
from orchestrator.budget import worst_case_usd
from orchestrator.errors import BudgetExhausted, FreshError, ModelError, PushError
from orchestrator.gate import base_phase, find_test_changes, run_gate
from orchestrator.lifecycle import AgentContext, AgentRecord, State
from orchestrator.tools import (
    TOOL_SCHEMAS, BashCall, ToolCallError, format_observation, parse_tool_call, strip_control,
)
from sandbox.base import Egress, Limits, Sandbox, SandboxError, SandboxSpec

BUNDLE_PATH = "/tmp/fresh-out.bundle"


class _LoopEnded(Exception):
    """The tool loop ended before a submit; `state` says why."""

    def __init__(self, state: State, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class AgentRunner:
    """Drives one agent from an empty sandbox to a pushed branch or a final state."""

    def __init__(self, ctx: AgentContext, record: AgentRecord, log: Any, sandbox: Sandbox | None = None) -> None:
        self.ctx = ctx
        self.rec = record
        self.log = log.bind(agent=record.agent_id, task=record.task.title)
        self.sandbox = sandbox  # given when a resumed run re-attaches to a surviving container
        self.resumed = record.state != State.QUEUED
        self.deadline = ctx.run_deadline

    def _start_clock(self) -> None:
        minutes = self.ctx.config.policy.agent_timeout_minutes
        self.deadline = min(self.ctx.run_deadline, time.monotonic() + minutes * 60)

    # -- lifecycle -------------------------------------------------------
    def run(self) -> AgentRecord:
        """Run to a final state; never raises for an agent-level failure."""
        keep = self.ctx.config.keep_containers
        self._start_clock()
        # Events raised below this thread's calls (e.g. the model client's retries) carry the agent id.
        structlog.contextvars.bind_contextvars(agent=self.rec.agent_id)
        try:
            if self.rec.state == State.PUSHING and self.rec.tip:
                self.log.info("resuming_push", tip=self.rec.tip)
                self._push()  # idempotent: a push cut short by a crash is simply done again
                return self.rec
            if self.rec.state == State.TESTING and self.rec.tip:
                self.log.info("resuming_gate", tip=self.rec.tip)
                self._judge(self.rec.tip)
                return self.rec
            self._set(State.STARTING)
            if self.sandbox is None:
                created = time.monotonic()
                start_at = self.rec.tip or self.ctx.base_commit  # imported work survives a lost container
                # On the bridge only while setup needs it: _setup cuts every network before the agent acts.
                spec = self._spec("agent", start_at)
                spec = replace(spec, network=spec.network or self._setup_on_network())
                self.sandbox = self.ctx.backend.create(spec)
                self.log.info("sandbox_created", container_id=self.sandbox.id, branch=self.rec.branch,
                              duration_s=round(time.monotonic() - created, 3))
                self._setup()
            else:
                self.log.info("sandbox_reattached", container_id=self.sandbox.id)
            self.rec.container_id = self.sandbox.id
            try:
                self.rec.summary = self._tool_loop()
            except _LoopEnded as ended:
                self._salvage()
                self._finish(ended.state, ended.reason)
                return self.rec
            self._deliver()
        except (FreshError, SandboxError) as exc:
            self.log.error("agent_error", error=str(exc))
            self._finish(State.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - one agent's bug must not stop the run
            self.log.exception("agent_crashed")
            self._finish(State.FAILED, f"internal error: {exc!r}")
        finally:
            if self.rec.state != State.AWAITING_APPROVAL and not keep:
                self.release_sandbox()
        return self.rec

    def release_sandbox(self) -> None:
        """Remove the agent's sandbox (idempotent)."""
        if self.sandbox is not None:
            self.sandbox.remove()
            self.sandbox = None
            self.log.info("sandbox_removed")

    def skip(self, state: State, reason: str) -> AgentRecord:
        """End an agent that never started (budget, stop, closed window)."""
        self._finish(state, reason)
        return self.rec

    def conclude(self, approved: bool | None, reason: str = "") -> AgentRecord:
        """Finish an agent that waited for a person: push on approval, else keep the work unpushed."""
        try:
            if approved is True:
                self.log.info("approved")
                self._push()
            elif approved is False:
                self._finish(State.REJECTED, "rejected by a person")
            else:
                self._finish(State.STOPPED, reason or "stopped while awaiting approval; work kept in the run repository")
        except (FreshError, SandboxError) as exc:
            self.log.error("push_failed", error=str(exc))
            self._finish(State.FAILED, str(exc))
        finally:
            if not self.ctx.config.keep_containers:
                self.release_sandbox()
        return self.rec

    def _set(self, state: State, reason: str = "") -> None:
        previous = self.rec.state
        self.rec.state = state
        if reason:
            self.rec.reason = reason
        self.log.info("state_changed", previous=str(previous), state=str(state), reason=reason or None)
        self.ctx.on_change(self.rec)

    def _finish(self, state: State, reason: str) -> None:
        self.rec.ended_at = time.time()
        self._set(state, reason)

    def _spec(self, role: str, commit: str) -> SandboxSpec:
        policy = self.ctx.config.policy
        return SandboxSpec(
            image=policy.image, run_id=self.ctx.run_id, agent_id=self.rec.agent_id,
            origin=str(self.ctx.run_repo), branch=self.rec.branch, base_commit=commit,
            role=role, limits=Limits(**policy.limits.model_dump()), network=policy.network,
            runtime=policy.runtime,
        )

    def _setup_on_network(self) -> bool:
        """Whether setup runs on the bridge and the network is cut afterwards."""
        policy = self.ctx.config.policy
        return (policy.setup_network or bool(policy.egress_allow)) and not policy.network

    def _setup(self) -> None:
        policy = self.ctx.config.policy
        cut = self._setup_on_network()
        command = policy.setup_command
        assert self.sandbox is not None
        if command:
            result = self.sandbox.run(command, timeout_s=policy.test_timeout_s)
            self.log.info("setup_done", exit_code=result.exit_code, duration_s=round(result.duration_s, 3))
            if not result.ok:
                raise FreshError("the setup command failed", hint=result.text()[-500:])
        if cut:
            egress = self._open_egress() if policy.egress_allow else None
            self.sandbox.isolate(egress)
            self.log.info("network_cut", egress_proxy=egress.proxy_url if egress else None,
                          allow=list(policy.egress_allow))

    def _open_egress(self) -> Egress:
        """The agent's allowlisting proxy; the model endpoint is denied whatever the allowlist says."""
        policy = self.ctx.config.policy
        endpoint = self.ctx.config.base_url or getattr(self.ctx.model, "base_url", None) or "https://api.openai.com"
        model_host = urlparse(str(endpoint)).hostname or ""
        egress = self.ctx.backend.open_egress(self.ctx.run_id, self.rec.agent_id, policy.image,
                                              policy.egress_allow, [model_host, "api.openai.com"])
        self.log.info("egress_proxy_started", proxy=egress.proxy_url, network=egress.network,
                      container_id=egress.proxy_id)
        return egress

    # -- the tool loop ---------------------------------------------------
    def first_messages(self) -> list[dict[str, Any]]:
        """The conversation's opening: system prompt and task."""
        policy = self.ctx.config.policy
        return [
            {"role": "system", "content": prompts.system_prompt(policy.test_command, policy.command_timeout_s)},
            {"role": "user", "content": prompts.task_prompt(self.rec.task, resumed=self.resumed)},
        ]

    def _tool_loop(self) -> str:
        policy = self.ctx.config.policy
        messages = self.first_messages()
        self._set(State.ANALYSIS)
        for _ in range(policy.max_steps):
            self._check_limits()
            completion = self._call_model(messages)
            messages.append(completion.assistant_message())
            self.rec.steps += 1
            if self.rec.state == State.ANALYSIS:
                self.rec.plan = (completion.content or "").strip()
                self.log.info("plan", plan=self.rec.plan[:2000])
                self._set(State.IMPLEMENTATION)
            if not completion.tool_calls:
                messages.append({"role": "user", "content": "Use a tool: bash to work, submit when done."})
                continue
            for call in completion.tool_calls:
                try:
                    action = parse_tool_call(call)
                except ToolCallError as exc:
                    self.log.warning("tool_call_rejected", tool=call.name, error=str(exc))
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": f"Error: {exc}"})
                    continue
                if not isinstance(action, BashCall):
                    self.log.info("submitted", summary=action.summary[:2000])
                    return action.summary
                messages.append({"role": "tool", "tool_call_id": call.id, "content": self._bash(action.command)})
        raise _LoopEnded(State.FAILED, f"step limit of {policy.max_steps} reached without submit")

    def _check_limits(self) -> None:
        decisions, agent_id = self.ctx.decisions, self.rec.agent_id
        if decisions.paused(agent_id):
            self.log.info("paused")
            while decisions.paused(agent_id) and not decisions.stop_reason(agent_id):
                threading.Event().wait(0.25)
            self.log.info("resumed")
        reason = decisions.stop_reason(agent_id)
        if reason:
            raise _LoopEnded(State.STOPPED, reason)
        if time.monotonic() > self.deadline:
            raise _LoopEnded(State.TIMED_OUT, "wall-clock limit reached")

    def _call_model(self, messages: list[dict[str, Any]]) -> Any:
        model, ledger = self.ctx.model, self.ctx.ledger
        worst = worst_case_usd(messages, TOOL_SCHEMAS, model.max_output_tokens, self.ctx.price)
        try:
            reservation = ledger.reserve(self.rec.agent_id, worst)
        except BudgetExhausted as exc:
            self.log.warning("budget_exhausted", needed_usd=round(worst, 6), detail=str(exc))
            raise _LoopEnded(State.BUDGET_EXHAUSTED, str(exc)) from exc
        started = time.monotonic()
        try:
            completion = model.complete(messages, TOOL_SCHEMAS)
        except ModelError as exc:
            ledger.release(reservation, billed=True)  # a failed call may still have been billed
            self.rec.cost_usd += reservation.usd
            self.log.error("model_failed", error=str(exc), charged_usd=round(reservation.usd, 6))
            raise _LoopEnded(State.FAILED, f"model call failed: {exc}") from exc
        usage = completion.usage
        cost = self.ctx.price.cost(usage.prompt_tokens, usage.completion_tokens)
        ledger.settle(reservation, cost)
        self.rec.prompt_tokens += usage.prompt_tokens
        self.rec.completion_tokens += usage.completion_tokens
        self.rec.cost_usd += cost
        self.log.info(
            "model_call", prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cost_usd=round(cost, 8), reserved_usd=round(reservation.usd, 8),
            duration_s=round(time.monotonic() - started, 3), tool_calls=len(completion.tool_calls),
        )
        self.ctx.on_change(self.rec)
        return completion

    def _bash(self, command: str) -> str:
        assert self.sandbox is not None
        policy = self.ctx.config.policy
        timeout = max(1.0, min(policy.command_timeout_s, self.deadline - time.monotonic()))
        result = self.sandbox.run(command, timeout_s=timeout, output_cap=policy.output_cap_bytes)
        self.log.info(
            "tool_call", tool="bash", command=command[:500], exit_code=result.exit_code,
            duration_s=round(result.duration_s, 4), timed_out=result.timed_out,
            output_bytes=len(result.output), truncated=result.truncated,
        )
        return format_observation(result.exit_code, result.output, result.timed_out, result.truncated)

    # -- finishing -------------------------------------------------------
    def _salvage(self) -> None:
        """Keep whatever the agent committed when the loop ended early (never pushed)."""
        try:
            tip = self._import_work("work in progress (run limit reached)")
            if tip:
                self.log.info("work_kept", branch=self.rec.branch, tip=tip, repo=str(self.ctx.run_repo))
        except (FreshError, SandboxError) as exc:
            self.log.warning("work_not_kept", error=str(exc))

    def _import_work(self, message: str) -> str:
        """Commit leftovers in the sandbox, bundle the branch and import it on the host."""
        assert self.sandbox is not None
        base, branch = self.ctx.base_commit, self.rec.branch
        script = (
            'set -e; if [ "$(git symbolic-ref -q --short HEAD)" = "$FRESH_BRANCH" ]; then '
            "git add -A; git diff --cached --quiet || "
            'printf "%s\\n" "$FRESH_MESSAGE" | git -c core.hooksPath=/dev/null commit -q --no-verify -F -; fi; '
            'n=$(git rev-list --count "$FRESH_BASE..refs/heads/$FRESH_BRANCH"); echo "commits=$n"; '
            f'if [ "$n" -gt 0 ]; then git bundle create -q {BUNDLE_PATH} "refs/heads/$FRESH_BRANCH" "^$FRESH_BASE"; fi'
        )
        env = {"FRESH_BRANCH": branch, "FRESH_BASE": base, "FRESH_MESSAGE": message or "agent work"}
        result = self.sandbox.run(script, timeout_s=120, env=env)
        if not result.ok:
            raise PushError("could not collect the agent's commits", hint=result.text()[-300:])
        if "commits=0" in result.text().split():
            return ""
        bundle = self.sandbox.read_file(BUNDLE_PATH)
        tip = gitops.import_bundle(self.ctx.run_repo, bundle, branch, base)
        self.rec.tip = tip
        self.log.info("work_imported", branch=branch, tip=tip, bundle_bytes=len(bundle))
        return tip

    def _deliver(self) -> None:
        """Import, gate, wait for approval, push."""
        # The summary becomes a commit message, a report line and a PR body: no terminal escapes in them.
        self.rec.summary = strip_control(self.rec.summary)
        tip = self._import_work(self.rec.summary)
        if not tip:
            self._finish(State.NO_CHANGES, "the agent submitted without changes")
            return
        self._judge(tip)

    def _judge(self, tip: str) -> None:
        """Gate the imported commit; then push, or hand over to a person."""
        self._set(State.TESTING)
        if self._refused(tip):
            return
        changes = gitops.changed_files(self.ctx.run_repo, self.ctx.base_commit, tip)
        self.rec.test_changes = find_test_changes(changes)
        if self.rec.test_changes:
            self.log.warning("test_changes", files=list(self.rec.test_changes))
        policy = self.ctx.config.policy
        setup_net = policy.setup_network and bool(policy.setup_command)
        verdict = run_gate(
            self.ctx.backend.create, replace(self._spec("gate", tip), network=setup_net),
            policy.test_command, setup_command=policy.setup_command, timeout_s=policy.test_timeout_s,
            base=base_phase(self.ctx.base_commit, changes) if policy.base_tests else None,
            before_tests=(lambda sandbox: sandbox.isolate()) if setup_net else None,
        )
        self.rec.verdict = verdict
        self.rec.tests_passed = verdict.passed
        self.log.info(
            "tests_finished", passed=verdict.passed, reason=verdict.reason, exit_code=verdict.exit_code,
            tests=verdict.counts.tests, failures=verdict.counts.failures, errors=verdict.counts.errors,
            duration_s=round(verdict.duration_s, 3),
            base_tests=None if verdict.base is None else {
                "passed": verdict.base.passed, "reason": verdict.base.reason, "tests": verdict.base.counts.tests,
                "failures": verdict.base.counts.failures, "duration_s": round(verdict.base.duration_s, 3)},
        )
        if not verdict.passed:
            self._finish(State.TESTS_FAILED, verdict.reason)
            return
        needs_person = policy.approval or (bool(self.rec.test_changes) and not policy.allow_test_changes)
        if needs_person:
            # The supervisor takes over: waiting holds no slot, and `conclude` pushes or discards.
            reason = "tests passed; waiting for a person"
            if self.rec.test_changes:
                reason += " (existing tests changed)"
            self._set(State.AWAITING_APPROVAL, reason)
            return
        self._push()

    def _refused(self, tip: str) -> bool:
        """Refuse commits holding what may not leave; the container is held for a person."""
        reasons = gitops.find_refusals(self.ctx.run_repo, self.ctx.base_commit, tip,
                                       self.ctx.config.policy.max_file_bytes)
        if not reasons:
            return False
        held = ""
        if self.sandbox is not None:
            self.sandbox.hold()
            held, self.sandbox = self.sandbox.id, None  # run() must not remove it
        self.log.warning("work_refused", reasons=reasons, container_id=held or None, tip=tip)
        self._finish(State.REFUSED, "refused: " + "; ".join(reasons))
        return True

    def _push(self) -> None:
        self._set(State.PUSHING)
        if not gitops.remote_has_branch(self.ctx.remote_url, self.rec.branch):
            gitops.push_branch(self.ctx.run_repo, self.ctx.remote_url, self.rec.branch)
        self.rec.pushed = True
        self.log.info("pushed", branch=self.rec.branch, tip=self.rec.tip, remote=self.ctx.remote_url)
        self._open_pull_request()
        self._finish(State.PUSHED, "tests passed; branch pushed")

    def _open_pull_request(self) -> None:
        """A PR for the pushed branch when origin is on GitHub; a failure leaves the branch pushed."""
        verdict = self.rec.verdict
        tests = "no test results" if verdict is None else (
            f"{verdict.counts.tests} tests, {verdict.counts.failures} failures, "
            f"{verdict.counts.errors} errors ({verdict.reason})")
        try:
            pr = forge.pull_request_for_push(
                remote_url=self.ctx.remote_url, branch=self.rec.branch, base=self.ctx.base_branch,
                task=self.rec.task.title, summary=self.rec.summary, tests_line=tests,
                cost_usd=self.rec.cost_usd, labels=self.ctx.config.policy.pr_labels)
        except forge.ForgeError as exc:
            self.log.warning("pull_request_failed", error=exc.message, hint=exc.hint)
            return
        if pr is not None:
            self.rec.pr_url = pr.url
            self.log.info("pull_request_opened", number=pr.number, url=pr.url, labelled=pr.labelled)
