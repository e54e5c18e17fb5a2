"""
Admin actions
=============

What the buttons of the admin app (:class:`~graywsgi.rollout.admin.app.AdminApp`)
do, apart from answering and auditing the request (that is the app's part):

====================  ==========================================================
``rollback``          set the kill switch: every canary share becomes 0
``resume``            clear the kill switch: configured shares apply again
``advance``           move the rollout plan to its next step, if its gate holds
====================  ==========================================================

Rollback and resume act on the rollout state store
(:class:`~graywsgi.state.rollout_state.StateStore`); without one they are
refused (409). Their answer reports the kill switch in the same shape as the
status document (:mod:`graywsgi.rollout.admin.status`) and whether it changed.

The rollout plan
----------------

``rollout=`` is anything with ``status()`` and ``advance(actor)`` (the
:class:`RolloutControl` protocol); without it the app uses the plan of the
Router's rule set (:mod:`graywsgi.rules.plan`), if there is one. ``advance``
moves the plan in this process, with this worker's windows for the gate; a
gate that does not hold is a refusal (409, the reason in ``detail``).
"""

from __future__ import annotations

import typing as t

from graywsgi.state.rollout_state import RolloutState, StateStore

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi.state.rollout import Rollout

__all__ = ["RolloutControl"]

#: The actions, each a ``POST /<action>`` route of the app.
_ACTIONS = ("rollback", "resume", "advance")


@t.runtime_checkable
class RolloutControl(t.Protocol):
    """What the admin app needs of a rollout plan engine.

    ``status()`` is shown as it is (JSON-serialisable); the page understands
    ``steps`` (a list of step names), ``step`` (the current index),
    ``step_name``, ``status`` and ``weight`` and lists the other members.
    ``advance(actor)`` moves to the next step and returns what to report, or
    raises :class:`~graywsgi.errors.GrayError` whose message explains the
    refusal (``"gate failed: canary error rate 4.1 % vs stable 0.3 %,
    margin 1 %"``).
    """

    def status(self) -> dict[str, t.Any]: ...

    def advance(self, actor: str) -> dict[str, t.Any]: ...


class _PlanControl:
    """:class:`RolloutControl` over a :class:`graywsgi.state.rollout.Rollout`."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout

    def status(self) -> dict[str, t.Any]:
        return self.rollout.status()

    def advance(self, actor: str) -> dict[str, t.Any]:
        self.rollout.advance(actor)
        return self.rollout.status()


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _kill_switch(state: RolloutState) -> dict[str, t.Any]:
    return {"killed": state.killed, "reason": state.reason, "since": state.since, "revision": state.revision}


def _perform(
    action: str, actor: str, store: StateStore | None, plan_control: t.Callable[[], RolloutControl | None]
) -> dict[str, t.Any]:
    """Do ``action`` (``rollback``, ``resume`` or ``advance``) for ``actor``;
    return what the answer reports besides the action, outcome and actor.

    ``store`` is the state store the kill switch lives in; ``plan_control``
    gives the rollout plan engine, and is asked only by ``advance``.

    :raises _Refused: the action cannot be done here (no store, no plan).
    :raises ~graywsgi.errors.GrayError: the plan refused to move (its gate).
    """
    if action == "advance":
        control = plan_control()
        if control is None:
            raise _Refused(409, "no rollout plan: the rule set has none and no rollout= was given")
        result: dict[str, t.Any] = {"rollout": control.advance(actor)}
    else:
        if store is None:
            raise _Refused(409, "no state store: give AdminApp(state=...) or a Router with a guard")
        before = store.current().killed
        if action == "rollback":
            after = store.rollback(f"rolled back by {actor} from the admin app")
        else:
            after = store.resume(f"resumed by {actor} from the admin app")
        result = {"kill_switch": _kill_switch(after), "changed": before != after.killed}
    return result
