"""
Rollout
=======

:class:`Rollout` moves a rollout plan (:mod:`graywsgi.rules.plan`, the data)
through its steps in the shared rollout state
(:mod:`graywsgi.state.rollout_state`), so every worker and every host sees
the same step: start, pause, resume, promote, roll back, advance -- by an
operator (``graywsgi rollout``, the admin app) or by itself when a step's
pause is over and the next step's gate holds (:meth:`Rollout.tick`, which
the Router calls at most once a second per worker).

A gate compares the canary's window with stable's. It reads them from a
:class:`GateWindows` -- the Router's :class:`~graywsgi.layers.guard.Guard`
is one -- so this module needs no layer.
"""

from __future__ import annotations

import logging
import time
import typing as t
from dataclasses import replace

from graywsgi.core.breaker import RouteBreaker
from graywsgi.core.window import LatencyWindow, SlidingWindow
from graywsgi.errors import ConfigurationError, GrayError
from graywsgi.rules.plan import PAUSED, PROMOTED, RUNNING, TRANSITIONS, GateFailed, Plan, PlanState
from graywsgi.state.rollout_state import StateStore

__all__ = ["GateWindows", "Rollout"]

logger = logging.getLogger("graywsgi.plan")


class GateWindows(t.Protocol):
    """What a plan's gates read: the canary's breaker and window, and stable's
    windows. :class:`~graywsgi.layers.guard.Guard` provides them."""

    @property
    def baseline(self) -> SlidingWindow:
        """Stable's (the default cluster's) outcome window."""

    @property
    def baseline_latency(self) -> LatencyWindow:
        """Stable's latency window."""

    def breaker(self, route: str) -> RouteBreaker:
        """The breaker (and its window) of ``route``."""

    def latency(self, route: str) -> float | None:
        """The mean latency of ``route`` over its window, or ``None``."""


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
        guard: GateWindows | None = None,
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
            new_status = TRANSITIONS.get((current.status, action))
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
