"""
Metrics' names and tag styles
=============================

How the lines of :class:`~graywsgi.metrics.layer.Metrics` carry their tags,
and how names and tag values are made safe and kept few. The lines
themselves are put together by :mod:`graywsgi.metrics.lines` and sent by
:mod:`graywsgi.metrics.statsd`.

Tag styles
----------

statsd has no tags, so ``tag_style`` decides how they are written:

- ``"statsd"`` (default) -- plain statsd / Graphite: tag *values* are
  appended to the name in a fixed order, ``graywsgi.request.canary.none.1_5_0.2xx.GET:12.500|ms``;
  dots in values become ``_``. Trace ids are never put in names (each one
  would create a Graphite series).
- ``"dogstatsd"`` -- ``graywsgi.request:12.500|ms|#route:canary,group:none,...``.
- ``"influx"`` -- InfluxDB / Telegraf's statsd input:
  ``graywsgi.request,route=canary,group=none,...:12.500|ms``.

Or pass a :class:`TagStyle` subclass instance. Names and tag values are
sanitised: only ``A-Z a-z 0-9 _ -`` (and ``.`` and ``/`` in tagged styles)
survive, everything else -- ``:``, ``|``, ``@``, ``,``, ``#``, ``=``,
spaces, newlines, non-ASCII -- becomes ``_``; values are cut to
``max_value_length`` characters. Each dimension keeps at most
``max_values`` distinct values per process; later newcomers are sent as
``other``, so a client inventing ``X-Version`` values cannot blow up the
number of series.
"""

from __future__ import annotations

import re
import typing as t

__all__ = ["TagStyle", "PlainStyle", "DogStatsdStyle", "InfluxStyle", "TAG_STYLES", "sanitize_name"]


Tags = t.Sequence[t.Tuple[str, str]]


# -- names and tag styles -----------------------------------------------------

_NAME_PART = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_UNSAFE_TAG_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_name(name: str, max_length: int = 200) -> str:
    """A metric name made safe: only ``A-Z a-z 0-9 _ - .``, no empty parts.

    >>> sanitize_name("breaker.trip:canary|c\\n")
    'breaker.trip_canary_c_'
    """
    parts = [part for part in _UNSAFE_NAME.sub("_", name[:max_length]).split(".") if part]
    return ".".join(parts) or "_"


class TagStyle:
    """How a metric line carries its tags. Subclass to write another format.

    A style turns tag pairs into a *fragment* once (:meth:`fragment`; the
    result is cached per combination) and puts name, value and fragment
    together per line (:meth:`line`). ``value`` is already ``"12.5|ms"``.
    """

    #: Whether ``trace_id`` tags may be written (False where they would
    #: become part of the metric name).
    trace_ids = True
    #: Characters that survive in a tag value; others become ``_``.
    unsafe_value = re.compile(r"[^A-Za-z0-9_.\-/]")

    def sanitize(self, value: str, max_length: int = 64) -> str:
        """Make a tag value safe for this style (never empty)."""
        return self.unsafe_value.sub("_", value[:max_length]) or "none"

    def fragment(self, tags: Tags) -> str:
        """The tags as this style writes them (already sanitised pairs)."""
        raise NotImplementedError

    def line(self, name: str, value: str, fragment: str) -> str:
        """One metric line: ``name``, ``value`` (``"1|c"``) and tag fragment."""
        raise NotImplementedError


class PlainStyle(TagStyle):
    """Plain statsd / Graphite: tag values become name parts, in order.

    >>> style = PlainStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("version", "1_5_0")]))
    'graywsgi.request.canary.1_5_0:12.500|ms'
    """

    trace_ids = False
    unsafe_value = re.compile(r"[^A-Za-z0-9_\-]")

    def fragment(self, tags: Tags) -> str:
        return "".join("." + value for _key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}{fragment}:{value}"


class DogStatsdStyle(TagStyle):
    """DogStatsD: ``name:value|type|#key:value,...``.

    >>> style = DogStatsdStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("status", "2xx")]))
    'graywsgi.request:12.500|ms|#route:canary,status:2xx'
    """

    def fragment(self, tags: Tags) -> str:
        if not tags:
            return ""
        return "|#" + ",".join(f"{key}:{value}" for key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}:{value}{fragment}"


class InfluxStyle(TagStyle):
    """InfluxDB / Telegraf statsd: ``name,key=value,...:value|type``.

    >>> style = InfluxStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("status", "2xx")]))
    'graywsgi.request,route=canary,status=2xx:12.500|ms'
    """

    def fragment(self, tags: Tags) -> str:
        return "".join(f",{key}={value}" for key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}{fragment}:{value}"


#: ``tag_style`` names and their styles.
TAG_STYLES: t.Mapping[str, type[TagStyle]] = {
    "statsd": PlainStyle,
    "dogstatsd": DogStatsdStyle,
    "influx": InfluxStyle,
}


class _Dimension:
    """Raw value -> sanitised value, for at most ``limit`` distinct raw values."""

    __slots__ = ("_style", "values", "_limit", "_max_length")

    def __init__(self, style: TagStyle, limit: int, max_length: int) -> None:
        self._style = style
        #: the admitted values; callers on the hot path look here first
        self.values: dict[str | None, str] = {None: "none"}
        self._limit = limit + 1
        self._max_length = max_length

    def get(self, raw: str | None) -> str:
        value = self.values.get(raw)
        if value is None:
            if len(self.values) >= self._limit:
                return "other"
            value = self.values[raw] = self._style.sanitize(t.cast(str, raw), self._max_length)
        return value

