"""
Evolving APIs
=============

The configuration of :class:`~graywsgi.evolution.stages.ProtocolEvolution`:
an :class:`Api` moving from an old version to a new one (its path mapping,
protocol versions, dates and mirror), the :class:`Stage` it is in, and the
:class:`Exemption` of clients still served in transition. What each stage
does to a request is :mod:`graywsgi.evolution.stages`; the mirror is
:mod:`graywsgi.evolution.mirror`.

Mapping
-------

``old`` and ``new`` are path prefixes (``/v1/orders`` covers ``/v1/orders``
and ``/v1/orders/7/lines``; the rest of the path is appended to ``new``) or
templates with ``{name}`` segments (``/v1/users/{id}/profile`` ->
``/v2/accounts/{id}``; a template matches the whole path, and both sides
must name the same variables).

Dated stages
------------

``transition_at`` and ``switch_at`` are instants (an aware
:class:`~datetime.datetime`, ISO 8601 text with a zone such as
``2026-03-01T00:00:00Z``, or unix seconds). The stage in force is the later
of the configured ``stage`` and the stages whose instant has passed, by the
middleware's ``clock`` (``time.time`` unless injected): stages only move
forward. ``Sunset`` is ``sunset_at``, or ``switch_at`` when not given (no
header when neither is set). ``Deprecation`` is ``deprecated_at``, or the
time the middleware was built.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import re
import time
import typing as t
from email.utils import formatdate

from graywsgi.core.version import VersionRange
from graywsgi.errors import ConfigurationError
from graywsgi.evolution.mirror import Mirror

__all__ = ["Api", "Exemption", "Stage"]

logger = logging.getLogger("graywsgi.evolution")

# Theory of operation: the stages are ordered and only move forward. The
# stage in force is the furthest of the configured stage and every stage
# whose instant has passed; _NEXT is the transition table dated instants
# follow, and the constructor refuses instants that would move backwards.


class Stage(str, enum.Enum):
    """The stage of an old API version."""

    COMPAT = "compat"
    TRANSITION = "transition"
    SWITCH = "switch"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Stage.COMPAT: 0, Stage.TRANSITION: 1, Stage.SWITCH: 2}
_NEXT = {Stage.COMPAT: (Stage.TRANSITION, Stage.SWITCH), Stage.TRANSITION: (Stage.SWITCH,), Stage.SWITCH: ()}

_Instant = _dt.datetime | str | int | float
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _instant(name: str, value: _Instant | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a datetime, ISO 8601 text or unix seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}: not an ISO 8601 instant: {value!r}") from None
    if not isinstance(value, _dt.datetime):
        raise ConfigurationError(f"{name} must be a datetime, ISO 8601 text or unix seconds, got {value!r}")
    if value.tzinfo is None:
        raise ConfigurationError(f"{name} must carry a time zone (e.g. ...Z), got {value.isoformat()}")
    return value.timestamp()


class _PathMap:
    """One side of a mapping: a prefix or a ``{name}`` template."""

    def __init__(self, what: str, text: str) -> None:
        if not isinstance(text, str) or not text.startswith("/"):
            raise ConfigurationError(f"{what} must be a path starting with '/', got {text!r}")
        self.text = text
        self.variables = tuple(_VARIABLE.findall(text))
        if len(set(self.variables)) != len(self.variables):
            raise ConfigurationError(f"{what} {text!r} names a variable twice")
        if self.variables:
            pattern = ""
            position = 0
            for match in _VARIABLE.finditer(text):
                pattern += re.escape(text[position:match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
                position = match.end()
            self.regex: re.Pattern[str] | None = re.compile(pattern + re.escape(text[position:]))
            self.prefix = ""
        else:
            if "{" in text or "}" in text:
                raise ConfigurationError(f"{what} {text!r}: braces must hold a variable name")
            self.regex = None
            self.prefix = text.rstrip("/") or "/"

    def match(self, path: str) -> dict[str, str] | None:
        """The variables (or ``{"": rest}`` for a prefix), or ``None``."""
        if self.regex is not None:
            found = self.regex.fullmatch(path)
            return found.groupdict() if found is not None else None
        if self.prefix == "/":
            return {"": path}
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return {"": path[len(self.prefix):]}
        return None

    def build(self, values: dict[str, str]) -> str:
        if self.regex is None:
            return (self.prefix.rstrip("/") + values.get("", "")) or "/"
        return _VARIABLE.sub(lambda m: values[m.group(1)], self.text)


class Exemption:
    """Clients that keep being served in transition.

    >>> old_sdk = Exemption("X-SDK-Version", "<2.0.0")
    >>> old_sdk.applies({"HTTP_X_SDK_VERSION": "1.9.3"}), old_sdk.applies({"HTTP_X_SDK_VERSION": "2.1.0"})
    (True, False)

    :param header: the request header holding the client's version.
    :param versions: a node-semver range (:class:`~graywsgi.core.version_range.VersionRange`);
        a client whose version is in it is exempt. An absent or invalid
        version is not.
    """

    def __init__(self, header: str, versions: str) -> None:
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise ConfigurationError(f"exemption header must be a header name, got {header!r}")
        try:
            self.range = VersionRange(versions)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"exemption for {header}: {exc}") from None
        self.header = header
        self.environ_key = "HTTP_" + header.upper().replace("-", "_")

    def __repr__(self) -> str:
        return f"Exemption({self.header!r}, {self.range.raw!r})"

    def applies(self, environ: t.Mapping[str, t.Any]) -> bool:
        value = environ.get(self.environ_key)
        if not isinstance(value, str) or not value.strip() or len(value) > 256:
            return False
        try:
            return self.range.contains(value.strip())
        except ValueError:
            return False


class Api:
    """One API moving from an old version to a new one.

    >>> api = Api("users", old="/v1/users/{id}", new="/v2/accounts/{id}", stage="transition")
    >>> api.successor("/v1/users/42")
    '/v2/accounts/42'
    >>> api.stage_at(0.0).value
    'transition'

    :param name: the API's name in metrics, logs and the admin status.
    :param old: the old path prefix or template.
    :param new: the new path prefix or template (same variables as ``old``).
    :param old_version: the old protocol version (``X-Protocol-Version``).
    :param new_version: the new protocol version.
    :param stage: the configured stage (a floor: dates move it further).
    :param transition_at: when transition starts (see "Dated stages").
    :param switch_at: when switch starts.
    :param deprecated_at: the ``Deprecation`` date; the build time if omitted.
    :param sunset_at: the ``Sunset`` date; ``switch_at`` if omitted.
    :param redirect_status: 308 (default) or 301.
    :param exemptions: clients served in transition.
    :param mirror: mirroring of the old requests still served.
    :param mirror_stages: the stages in which the mirror acts
        (default: transition only).
    """

    def __init__(
        self,
        name: str,
        *,
        old: str,
        new: str,
        old_version: str = "1",
        new_version: str = "2",
        stage: Stage | str = Stage.COMPAT,
        transition_at: _Instant | None = None,
        switch_at: _Instant | None = None,
        deprecated_at: _Instant | None = None,
        sunset_at: _Instant | None = None,
        redirect_status: int = 308,
        exemptions: t.Iterable[Exemption] = (),
        mirror: Mirror | None = None,
        mirror_stages: t.Iterable[Stage | str] = (Stage.TRANSITION,),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"API name must be a non-empty str, got {name!r}")
        self.name = name
        self.old = _PathMap(f"API {name}: old", old)
        self.new = _PathMap(f"API {name}: new", new)
        if sorted(self.old.variables) != sorted(self.new.variables) or (self.old.regex is None) != (
            self.new.regex is None
        ):
            raise ConfigurationError(
                f"API {name}: old {old!r} and new {new!r} must both be prefixes, or templates "
                "naming the same variables"
            )
        for label, version in (("old_version", old_version), ("new_version", new_version)):
            if not isinstance(version, str) or not re.fullmatch(r"[\x21-\x7e]{1,64}", version):
                raise ConfigurationError(f"API {name}: {label} must be a short token, got {version!r}")
        self.old_version = old_version
        self.new_version = new_version
        self.stage = _stage(f"API {name}: stage", stage)
        self.transition_at = _instant(f"API {name}: transition_at", transition_at)
        self.switch_at = _instant(f"API {name}: switch_at", switch_at)
        if self.transition_at is not None and self.switch_at is not None and self.switch_at <= self.transition_at:
            raise ConfigurationError(f"API {name}: switch_at must come after transition_at")
        self.deprecated_at = _instant(f"API {name}: deprecated_at", deprecated_at)
        if self.deprecated_at is None:
            self.deprecated_at = float(int(time.time()))
        self.sunset_at = _instant(f"API {name}: sunset_at", sunset_at)
        if self.sunset_at is None:
            self.sunset_at = self.switch_at
        if redirect_status not in (301, 308) or isinstance(redirect_status, bool):
            raise ConfigurationError(f"API {name}: redirect_status must be 308 or 301, got {redirect_status!r}")
        if redirect_status == 301:
            logger.warning(
                "graywsgi evolution: API %s redirects with 301; clients may change POST to GET "
                "and lose the body (308 keeps them)", name,
            )
        self.redirect_status = redirect_status
        self.exemptions = tuple(exemptions)
        for exemption in self.exemptions:
            if not isinstance(exemption, Exemption):
                raise ConfigurationError(f"API {name}: exemptions must be Exemption objects, got {exemption!r}")
        if mirror is not None and not isinstance(mirror, Mirror):
            raise ConfigurationError(f"API {name}: mirror must be a graywsgi.mirror.Mirror, got {mirror!r}")
        self.mirror = mirror
        self.mirror_stages = frozenset(_stage(f"API {name}: mirror_stages", s) for s in mirror_stages)
        if Stage.SWITCH in self.mirror_stages:
            raise ConfigurationError(f"API {name}: nothing is served in switch, so nothing can be mirrored")
        # Header values that do not change per request.
        self.deprecation_header = f"@{int(self.deprecated_at)}"
        self.sunset_header = formatdate(self.sunset_at, usegmt=True) if self.sunset_at is not None else None

    def __repr__(self) -> str:
        return f"Api({self.name!r}, old={self.old.text!r}, new={self.new.text!r})"

    def stage_at(self, now: float) -> Stage:
        """The stage in force at unix time ``now``."""
        stage = self.stage
        for later in _NEXT[stage]:
            at = self.switch_at if later is Stage.SWITCH else self.transition_at
            if at is not None and now >= at and later.rank > stage.rank:
                stage = later
        return stage

    def next_change(self, now: float) -> tuple[Stage, float] | None:
        """The next dated stage after ``now`` and its instant, if any."""
        current = self.stage_at(now)
        for later in _NEXT[current]:
            at = self.switch_at if later is Stage.SWITCH else self.transition_at
            if at is not None and at > now:
                return later, at
        return None

    def successor(self, path: str) -> str | None:
        """The new path for an old ``path``, or ``None`` if it is not old."""
        values = self.old.match(path)
        return self.new.build(values) if values is not None else None


def _stage(what: str, value: Stage | str) -> Stage:
    try:
        return Stage(value)
    except ValueError:
        raise ConfigurationError(f"{what} must be one of {[s.value for s in Stage]}, got {value!r}") from None
