"""
OpenFeature
===========

An `OpenFeature <https://openfeature.dev>`_ provider that answers flag
evaluations from the gray context of the request being handled, so
application code can ask the standard flag API instead of reading
:data:`graywsgi.current`::

    from openfeature import api
    from graywsgi.contrib.openfeature import GrayProvider

    api.set_provider_and_wait(GrayProvider())
    client = api.get_client()

    # in a view, while graywsgi middleware handles the request:
    if client.get_boolean_value("is-canary", False):
        ...

Needs the ``openfeature`` extra (``pip install graywsgi[openfeature]``,
the OpenFeature Python SDK 0.10 or later).

Flags
-----

=================  =======  ===========================================  ===============
flag               type     value                                        variant
=================  =======  ===========================================  ===============
``is-canary``      boolean  the route is not a stable route              the route
``route``          string   ``current.route``                            the route
``ab-group``       string   ``current.group``                            the group
``gray-id``        string   ``current.gray_id``                          none
``version``        string   ``current.version`` (``X-Version``)          the version
``degrade-level``  string   ``NONE``, ``L1``, ``L2`` or ``L3``           the level
``rules-version``  string   ``current.rules_version``                    the rules version
=================  =======  ===========================================  ===============

Reasons, for the route flags (``is-canary``, ``route``, ``ab-group``), from
``current.route_reason`` (what the :class:`~graywsgi.layers.router.Router`
recorded):

- ``weight`` -> ``SPLIT`` (a weighted cluster of the matched rule took the
  request);
- ``color``, ``version`` -> ``TARGETING_MATCH`` (an explicit colour or a
  version route chose it);
- ``default``, ``no_match``, ``error`` -> ``DEFAULT`` (the default cluster
  got the request because nothing else claimed it);
- ``rerouted: ...``, ``retried on the default cluster`` -> ``DISABLED`` (the
  guard took the canary out of service for this request);
- no reason recorded (:class:`~graywsgi.layers.split.CanarySplit`, which records
  none): ``TARGETING_MATCH`` when the request's ``X-Traffic-Color`` names its
  route in ``colors``, ``DEFAULT`` for a fallback context or a stable
  request, else ``SPLIT`` (the gray id's hash bucket put it on canary).

The other flags answer ``TARGETING_MATCH`` when the request carries a value
(``degrade-level`` always does).

A flag the context holds no value for (no split ran, no group assigned, no
gray id sent, ...) answers the caller's default value with reason
``DEFAULT``. Outside a request (no gray context bound) every known flag
answers the caller's default with reason ``ERROR`` and error code
``GENERAL``. An unknown flag answers ``FLAG_NOT_FOUND``, a known flag asked
for with the wrong type (``get_boolean_value("route", ...)``, any integer,
float or object evaluation) ``TYPE_MISMATCH``, both with the caller's
default. The provider never raises: an unexpected error becomes an
``ERROR``/``GENERAL`` answer with the caller's default. It does no I/O and
takes no lock: an evaluation reads one context variable.

The OpenFeature evaluation context is not consulted: the gray context of the
request is the provider's only input.
"""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Mapping, Sequence

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "graywsgi.contrib.openfeature needs the OpenFeature Python SDK (openfeature-sdk): "
        "pip install graywsgi[openfeature]"
    ) from error

from graywsgi.core.context import GrayContext, get_current
from graywsgi.layers.split import DEFAULT_COLORS

if t.TYPE_CHECKING:  # pragma: no cover
    from openfeature.flag_evaluation import FlagValueType

__all__ = ["GrayProvider", "FLAGS", "BOOLEAN_FLAGS", "STRING_FLAGS", "NO_CONTEXT_MESSAGE"]

logger = logging.getLogger("graywsgi.contrib.openfeature")

#: The boolean flags the provider serves.
BOOLEAN_FLAGS: frozenset[str] = frozenset({"is-canary"})
#: The string flags the provider serves.
STRING_FLAGS: frozenset[str] = frozenset(
    {"route", "ab-group", "gray-id", "version", "degrade-level", "rules-version"}
)
#: Every flag the provider serves.
FLAGS: frozenset[str] = BOOLEAN_FLAGS | STRING_FLAGS

#: The error message of an evaluation outside a request.
NO_CONTEXT_MESSAGE = (
    "no gray context: graywsgi flags are only available while a request passes through"
    " graywsgi middleware (or in work wrapped by graywsgi.carry_context)"
)

_ROUTE_REASONS: Mapping[str, Reason] = {
    "weight": Reason.SPLIT,
    "color": Reason.TARGETING_MATCH,
    "version": Reason.TARGETING_MATCH,
    "default": Reason.DEFAULT,
    "no_match": Reason.DEFAULT,
    "error": Reason.DEFAULT,
    "retried on the default cluster": Reason.DISABLED,
}

_V = t.TypeVar("_V")


class GrayProvider(AbstractProvider):
    """Serve the gray context of the current request as OpenFeature flags.

    :param stable_routes: the routes that are not canary (``is-canary`` is
        false on them). Pass the rule set's ``default_cluster`` (and any
        other cluster that is not a canary) when it is not ``stable``.
    :param colors: ``X-Traffic-Color`` value -> route, as given to
        :class:`~graywsgi.layers.split.CanarySplit`; used only to tell a colour
        decision from a hash decision when the split recorded no reason.
    """

    def __init__(
        self,
        *,
        stable_routes: t.Iterable[str] = ("stable",),
        colors: Mapping[str, str] = DEFAULT_COLORS,
    ) -> None:
        super().__init__()
        self.stable_routes: frozenset[str] = frozenset(stable_routes)
        self.colors: dict[str, str] = {color.lower(): route for color, route in colors.items()}
        self._metadata = Metadata(name="graywsgi")

    def get_metadata(self) -> Metadata:
        """The provider's name: ``graywsgi``."""
        return self._metadata

    # --- OpenFeature resolution methods -------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """``is-canary``."""
        try:
            problem = _check(flag_key, BOOLEAN_FLAGS, "boolean")
            if problem is not None:
                return _error(default_value, *problem)
            context = get_current()
            if context is None:
                return _error(default_value, ErrorCode.GENERAL, NO_CONTEXT_MESSAGE)
            route = context.route
            if route is None:
                return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
            return FlagResolutionDetails(
                value=route not in self.stable_routes, reason=self._route_reason(context), variant=route
            )
        except Exception as error:  # never into application code
            return self._failed(flag_key, default_value, error)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """``route``, ``ab-group``, ``gray-id``, ``version``,
        ``degrade-level``, ``rules-version``."""
        try:
            problem = _check(flag_key, STRING_FLAGS, "string")
            if problem is not None:
                return _error(default_value, *problem)
            context = get_current()
            if context is None:
                return _error(default_value, ErrorCode.GENERAL, NO_CONTEXT_MESSAGE)
            if flag_key == "route" or flag_key == "ab-group":
                value = context.route if flag_key == "route" else context.group
                if value is None:
                    return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
                return FlagResolutionDetails(value=value, reason=self._route_reason(context), variant=value)
            if flag_key == "degrade-level":
                level = context.degrade_level.name
                return FlagResolutionDetails(value=level, reason=Reason.TARGETING_MATCH, variant=level)
            if flag_key == "gray-id":
                value, variant = context.gray_id, None  # no user ids in variants (they reach telemetry)
            elif flag_key == "version":
                value = variant = context.version
            else:  # rules-version
                value = variant = context.rules_version
            if value is None:
                return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
            return FlagResolutionDetails(value=value, reason=Reason.TARGETING_MATCH, variant=variant)
        except Exception as error:  # never into application code
            return self._failed(flag_key, default_value, error)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """No integer flags: ``TYPE_MISMATCH`` for a known flag, else ``FLAG_NOT_FOUND``."""
        return _error(default_value, *_wrong_type(flag_key, "integer"))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """No float flags: ``TYPE_MISMATCH`` for a known flag, else ``FLAG_NOT_FOUND``."""
        return _error(default_value, *_wrong_type(flag_key, "float"))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """No object flags: ``TYPE_MISMATCH`` for a known flag, else ``FLAG_NOT_FOUND``."""
        return _error(default_value, *_wrong_type(flag_key, "object"))

    # --- helpers ---------------------------------------------------------------

    def _route_reason(self, context: GrayContext) -> Reason:
        """The OpenFeature reason for the route (and group) in ``context``."""
        why = context.route_reason
        if why is not None:
            reason = _ROUTE_REASONS.get(why)
            if reason is not None:
                return reason
            if why.startswith("rerouted:"):
                return Reason.DISABLED
            return Reason.UNKNOWN
        # CanarySplit records no reason: infer it as CanarySplit.decide does.
        route = context.route
        if context.is_fallback:
            return Reason.DEFAULT
        color = context.traffic_color
        if color is not None and color.isascii() and self.colors.get(color.lower()) == route:
            return Reason.TARGETING_MATCH
        if route in self.stable_routes:
            return Reason.DEFAULT
        return Reason.SPLIT

    def _failed(self, flag_key: str, default_value: _V, error: Exception) -> FlagResolutionDetails[_V]:
        logger.exception("graywsgi OpenFeature provider failed to evaluate %r", flag_key)
        return _error(default_value, ErrorCode.GENERAL, f"graywsgi provider error: {error!r}")


def _check(flag_key: str, served: frozenset[str], kind: str) -> tuple[ErrorCode, str] | None:
    """``None`` if ``served`` holds ``flag_key``, else the error to answer."""
    if flag_key in served:
        return None
    return _wrong_type(flag_key, kind)


def _wrong_type(flag_key: str, kind: str) -> tuple[ErrorCode, str]:
    if flag_key in BOOLEAN_FLAGS:
        return ErrorCode.TYPE_MISMATCH, f"flag {flag_key!r} is a boolean flag, not {kind}"
    if flag_key in STRING_FLAGS:
        return ErrorCode.TYPE_MISMATCH, f"flag {flag_key!r} is a string flag, not {kind}"
    return ErrorCode.FLAG_NOT_FOUND, f"graywsgi serves no flag {flag_key!r} (it serves {', '.join(sorted(FLAGS))})"


def _error(default_value: _V, code: ErrorCode, message: str) -> FlagResolutionDetails[_V]:
    return FlagResolutionDetails(value=default_value, reason=Reason.ERROR, error_code=code, error_message=message)
