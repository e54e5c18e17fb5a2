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
:class:`~graywsgi.state.rollout.Rollout` moves it; the Router consults it.
This module is the data only: it imports no store and no layer.
"""

from __future__ import annotations

import re
import types
import typing as t
from dataclasses import dataclass

from graywsgi.errors import GrayError

__all__ = ["Gate", "Step", "Plan", "PlanState", "GateFailed", "parse_duration"]

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


#: (status, action) -> the status the action leads to; a pair not here is refused.
TRANSITIONS: t.Mapping[tuple[str, str], str] = types.MappingProxyType(
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
