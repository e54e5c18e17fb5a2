"""
Rollout plans
=============

The seven-step switch (pre-check, dark launch, first slice, observe, ramp,
promote, retire) as data: a plan in the rule file drives one cluster's
weight in one rule through ordered steps, each with an optional pause and
an optional gate that compares the canary with stable over the sliding
window before the plan may move on.

.. code-block:: yaml

    plan:
      rule: checkout          # the rule whose split the plan drives
      cluster: canary         # the cluster whose weight each step sets
      steps:
        - {name: dark-launch, weight: 0}
        - {name: first-slice, weight: 1, pause: 10m}
        - {name: five-percent, weight: 5, pause: 30m,
           gate: {min_requests: 200, max_error_rate_diff: 0.01, max_latency_ratio: 1.5}}
        - {name: ramp-25, weight: 25, pause: 30m, gate: {min_requests: 500, max_error_rate_diff: 0.01}}
        - {name: ramp-50, weight: 50, pause: 1h, gate: {min_requests: 1000, max_error_rate_diff: 0.01}}
        - {name: full, weight: 100}

A step's ``weight`` (percent) replaces the cluster's configured weight in
the rule while the plan runs; ``pause`` (``30s``, ``10m``, ``1h`` or a
number of seconds) makes the plan move on by itself once that long has
passed *and* the next step's gate passes; without ``pause`` a step waits
until an operator advances it (``graywsgi rollout advance``). A gate holds
when the canary's window has at least ``min_requests`` requests, its error
rate exceeds stable's by at most ``max_error_rate_diff``, and its mean
latency is at most ``max_latency_ratio`` times stable's.

The plan's *state* -- current step, since when, running, paused, promoted
or aborted, the last refusal -- lives in the shared rollout state
(:mod:`graywsgi.state.rollout_state`), so every worker and every host sees the same step.
:class:`Rollout` moves it; the Router consults it.
"""

from __future__ import annotations

import logging
import re
import time
import types
import typing as t
from dataclasses import dataclass, replace

from graywsgi.errors import ConfigurationError, GrayError

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi.layers.guard import Guard
    from graywsgi.state.rollout_state import StateStore

__all__ = ["Gate", "Step", "Plan", "PlanState", "Rollout", "GateFailed", "parse_duration"]

logger = logging.getLogger("graywsgi.plan")

NOT_STARTED, RUNNING, PAUSED, PROMOTED, ABORTED = "not_started", "running", "paused", "promoted", "aborted"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """``"10m"`` -> 600.0; numbers are seconds.

    :raises ValueError: for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not value >= 0:
            raise ValueError(f"a duration must be >= 0, got {value!r}")
        return float(value)
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a duration: {value!r} (use 30s, 10m, 1h or seconds)")
    return float(match.group(1)) * _UNITS[match.group(2)]


class GateFailed(GrayError):
    """A gate refused to move the plan on; the message says why."""


@dataclass(frozen=True)
class Gate:
    """Conditions for moving on, comparing canary with stable over the window."""

    min_requests: int = 0
    max_error_rate_diff: float | None = None
    max_latency_ratio: float | None = None


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    :param name: shown in status and logs.
    :param weight: the cluster's weight in percent during this step
        (``None``: keep the previous step's).
    :param pause: seconds before the plan moves on by itself; ``None``:
        until advanced by an operator.
    :param gate: must hold before the plan moves on *into* this step.
    """

    name: str
    weight: float | None = None
    pause: float | None = None
    gate: Gate | None = None


@dataclass(frozen=True)
class Plan:
    """A rollout plan: ``steps`` drive ``cluster``'s weight in ``rule``."""

    rule: str
    cluster: str
    steps: tuple[Step, ...]

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> Plan:
        steps = []
        for item in data["steps"]:
            gate = item.get("gate")
            pause = item.get("pause")
            steps.append(
                Step(
                    name=item["name"],
                    weight=None if item.get("weight") is None else float(item["weight"]),
                    pause=None if pause is None else parse_duration(pause),
                    gate=Gate(
                        min_requests=int(gate.get("min_requests", 0)),
                        max_error_rate_diff=gate.get("max_error_rate_diff"),
                        max_latency_ratio=gate.get("max_latency_ratio"),
                    )
                    if gate
                    else None,
                )
            )
        return cls(rule=data["rule"], cluster=data["cluster"], steps=tuple(steps))

    def to_dict(self) -> dict[str, t.Any]:
        steps: list[dict[str, t.Any]] = []
        for step in self.steps:
            item: dict[str, t.Any] = {"name": step.name}
            if step.weight is not None:
                item["weight"] = step.weight
            if step.pause is not None:
                item["pause"] = step.pause
            if step.gate is not None:
                gate: dict[str, t.Any] = {"min_requests": step.gate.min_requests}
                if step.gate.max_error_rate_diff is not None:
                    gate["max_error_rate_diff"] = step.gate.max_error_rate_diff
                if step.gate.max_latency_ratio is not None:
                    gate["max_latency_ratio"] = step.gate.max_latency_ratio
                item["gate"] = gate
            steps.append(item)
        return {"rule": self.rule, "cluster": self.cluster, "steps": steps}

    def weight_at(self, index: int) -> float | None:
        """The weight in force at step ``index`` (the last step that set one)."""
        for step in reversed(self.steps[: index + 1]):
            if step.weight is not None:
                return step.weight
        return None


@dataclass(frozen=True)
class PlanState:
    """Where a plan stands; part of the shared rollout state."""

    step: int = 0
    status: str = NOT_STARTED
    since: float = 0.0
    advance_requested_at: float | None = None
    requested_by: str = ""
    refusal: str = ""
    refusal_at: float | None = None
    actor: str = ""

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "step": self.step,
            "status": self.status,
            "since": self.since,
            "advance_requested_at": self.advance_requested_at,
            "requested_by": self.requested_by,
            "refusal": self.refusal,
            "refusal_at": self.refusal_at,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> PlanState:
        status = str(data.get("status", NOT_STARTED))
        if status not in (NOT_STARTED, RUNNING, PAUSED, PROMOTED, ABORTED):
            raise ValueError(f"unknown plan status {status!r}")
        return cls(
            step=int(data.get("step", 0)),
            status=status,
            since=float(data.get("since", 0.0)),
            advance_requested_at=None if data.get("advance_requested_at") is None
            else float(data["advance_requested_at"]),
            requested_by=str(data.get("requested_by", "")),
            refusal=str(data.get("refusal", "")),
            refusal_at=None if data.get("refusal_at") is None else float(data["refusal_at"]),
            actor=str(data.get("actor", "")),
        )


_TRANSITIONS: t.Mapping[tuple[str, str], str] = types.MappingProxyType(
    {
        (NOT_STARTED, "start"): RUNNING,
        (ABORTED, "start"): RUNNING,
        (PROMOTED, "start"): RUNNING,
        (RUNNING, "pause"): PAUSED,
        (PAUSED, "resume"): RUNNING,
        (RUNNING, "promote"): PROMOTED,
        (PAUSED, "promote"): PROMOTED,
        (RUNNING, "rollback"): ABORTED,
        (PAUSED, "rollback"): ABORTED,
        (PROMOTED, "rollback"): ABORTED,
        (NOT_STARTED, "rollback"): ABORTED,
    }
)


class Rollout:
    """Moves a plan through its steps, in the shared state.

    :param plan: the plan (from the rule set).
    :param state: the shared rollout state store.
    :param guard: the Router's guard, whose windows the gates read; without
        one, gated steps cannot be entered except with ``force``.
    :param wall_clock: ``time.time`` (injectable for tests).
    """

    def __init__(
        self,
        plan: Plan,
        state: StateStore,
        guard: Guard | None = None,
        *,
        wall_clock: t.Callable[[], float] = time.time,
    ) -> None:
        if not plan.steps:
            raise ConfigurationError("a plan needs at least one step")
        self.plan = plan
        self.state = state
        self.guard = guard
        self._wall = wall_clock

    # -- reading -----------------------------------------------------------------

    def plan_state(self) -> PlanState:
        return self.state.current().plan or PlanState()

    def weight(self, plan_state: PlanState | None = None) -> float | None:
        """The weight the plan imposes now, or ``None`` (configured weights apply)."""
        plan_state = plan_state or self.plan_state()
        if plan_state.status in (RUNNING, PAUSED):
            return self.plan.weight_at(min(plan_state.step, len(self.plan.steps) - 1))
        if plan_state.status == PROMOTED:
            return 100.0
        return None

    def status(self) -> dict[str, t.Any]:
        """Where the plan stands, JSON-serialisable."""
        plan_state = self.plan_state()
        index = min(plan_state.step, len(self.plan.steps) - 1)
        step = self.plan.steps[index]
        return {
            "rule": self.plan.rule,
            "cluster": self.plan.cluster,
            "status": plan_state.status,
            "step": index,
            "step_name": step.name,
            "steps": [s.name for s in self.plan.steps],
            "weight": self.weight(plan_state),
            "since": plan_state.since,
            "pause": step.pause,
            "refusal": plan_state.refusal,
            "killed": self.state.current().killed,
        }

    def gate_problem(self, index: int) -> str:
        """Why the gate of step ``index`` does not hold now, or ``""``."""
        gate = self.plan.steps[index].gate
        if gate is None:
            return ""
        if self.guard is None:
            return "gate cannot be checked: this process has no guard (its windows hold the traffic)"
        breaker = self.guard.breaker(self.plan.cluster)
        if breaker.state.value != "closed":
            return f"gate failed: the canary breaker is {breaker.state.value.replace('_', '-')}"
        canary = breaker.window.totals()
        stable = self.guard.baseline.totals()
        if canary.requests < gate.min_requests:
            return (
                f"gate failed: canary has {canary.requests} requests in the window, "
                f"{gate.min_requests} needed"
            )
        if gate.max_error_rate_diff is not None:
            diff = canary.error_rate - stable.error_rate
            if diff > gate.max_error_rate_diff + 1e-12:
                return (
                    f"gate failed: canary error rate {canary.error_rate * 100:.1f} % vs stable "
                    f"{stable.error_rate * 100:.1f} %, margin {gate.max_error_rate_diff * 100:g} %"
                )
        if gate.max_latency_ratio is not None:
            canary_latency = self.guard.latency(self.plan.cluster)
            stable_latency = self.guard.baseline_latency.mean()
            if canary_latency is not None and stable_latency:
                ratio = canary_latency / stable_latency
                if ratio > gate.max_latency_ratio:
                    return (
                        f"gate failed: canary latency {canary_latency * 1000:.1f} ms is {ratio:.2f}x "
                        f"stable's {stable_latency * 1000:.1f} ms, limit {gate.max_latency_ratio:g}x"
                    )
        return ""

    # -- moving ------------------------------------------------------------------

    def _change(self, action: str, actor: str, **fields: t.Any) -> PlanState:
        def change(state: t.Any) -> t.Any:
            current = state.plan or PlanState()
            new_status = _TRANSITIONS.get((current.status, action))
            if new_status is None:
                raise GrayError(f"cannot {action} a plan that is {current.status.replace('_', ' ')}")
            updated = replace(current, status=new_status, actor=actor, **fields)
            state = replace(state, plan=updated)
            if action == "rollback":
                state = state.with_kill(True, f"plan rolled back by {actor}", self._wall())
            if action == "start" and state.killed:
                state = state.with_kill(False, f"plan started by {actor}", self._wall())
            return state

        plan_state = self.state.update(change).plan or PlanState()
        logger.warning("graywsgi plan %s by %s: now %s at step %d (%s)", action, actor, plan_state.status,
                       plan_state.step, self.plan.steps[min(plan_state.step, len(self.plan.steps) - 1)].name)
        return plan_state

    def start(self, actor: str = "unknown") -> PlanState:
        """Start (or restart) at the first step."""
        return self._change("start", actor, step=0, since=self._wall(), refusal="", refusal_at=None,
                            advance_requested_at=None)

    def pause(self, actor: str = "unknown") -> PlanState:
        """Stop moving on by itself (the current weight stays)."""
        return self._change("pause", actor)

    def resume(self, actor: str = "unknown") -> PlanState:
        """Move on by itself again."""
        return self._change("resume", actor, since=self._wall())

    def promote(self, actor: str = "unknown") -> PlanState:
        """Canary takes all traffic of the rule (weight 100)."""
        return self._change("promote", actor, since=self._wall())

    def rollback(self, actor: str = "unknown") -> PlanState:
        """Abort the plan and set the kill switch: canary share 0, everywhere."""
        return self._change("rollback", actor, since=self._wall())

    def request_advance(self, actor: str = "unknown") -> float:
        """Ask the serving workers to advance (they hold the windows); returns the request time."""
        now = self._wall()

        def change(state: t.Any) -> t.Any:
            current = state.plan or PlanState()
            if current.status != RUNNING:
                raise GrayError(f"cannot advance a plan that is {current.status.replace('_', ' ')}")
            return replace(state, plan=replace(current, advance_requested_at=now, requested_by=actor))

        self.state.update(change)
        return now

    def advance(self, actor: str = "unknown", *, force: bool = False) -> PlanState:
        """Move to the next step now if its gate holds (or ``force``).

        :raises GateFailed: with the reason, when the gate does not hold.
        :raises GrayError: when the plan is not running or at its last step.
        """
        plan_state = self.plan_state()
        if plan_state.status != RUNNING:
            raise GrayError(f"cannot advance a plan that is {plan_state.status.replace('_', ' ')}")
        target = plan_state.step + 1
        if target >= len(self.plan.steps):
            raise GrayError("the plan is at its last step: promote it")
        problem = "" if force else self.gate_problem(target)
        if problem:
            self._refuse(plan_state.step, problem)
            raise GateFailed(problem)
        return self._move(plan_state.step, target, actor)

    def _move(self, from_step: int, to_step: int, actor: str) -> PlanState:
        now = self._wall()

        def change(state: t.Any) -> t.Any:
            current = state.plan or PlanState()
            if current.status != RUNNING or current.step != from_step:
                return state  # someone else moved it meanwhile
            return replace(state, plan=replace(
                current, step=to_step, since=now, advance_requested_at=None, refusal="", refusal_at=None,
                actor=actor,
            ))

        plan_state = self.state.update(change).plan or PlanState()
        logger.warning("graywsgi plan advanced by %s to step %d (%s), weight %s", actor, plan_state.step,
                       self.plan.steps[plan_state.step].name, self.weight(plan_state))
        return plan_state

    def _refuse(self, at_step: int, problem: str) -> None:
        now = self._wall()

        def change(state: t.Any) -> t.Any:
            current = state.plan or PlanState()
            if current.step != at_step:
                return state
            return replace(state, plan=replace(current, refusal=problem, refusal_at=now, advance_requested_at=None))

        self.state.update(change)
        logger.warning("graywsgi plan not advanced: %s", problem)

    def tick(self) -> None:
        """Advance when asked to, or when the step's pause is over and the gate holds.

        Called by the Router, at most once per second per worker.
        """
        plan_state = self.plan_state()
        if plan_state.status != RUNNING or plan_state.step + 1 >= len(self.plan.steps):
            return
        step = self.plan.steps[plan_state.step]
        requested = plan_state.advance_requested_at is not None
        due = step.pause is not None and self._wall() - plan_state.since >= step.pause
        if not (requested or due):
            return
        target = plan_state.step + 1
        problem = self.gate_problem(target)
        if problem:
            if requested or not plan_state.refusal:  # not a write per tick while it waits
                self._refuse(plan_state.step, problem)
            return
        self._move(plan_state.step, target, plan_state.requested_by or "plan")
