"""
Reading settings
================

How graywsgi reads the settings of :mod:`graywsgi.contrib.flask` and
:mod:`graywsgi.contrib.django`: every key is checked against
:data:`SETTINGS` (the keys and their values are listed in
:mod:`graywsgi.contrib.settings_layers`), and every problem is reported as a
:class:`SettingsError` naming the key. This module holds the reader and the
converters that check one value each; :mod:`graywsgi.contrib.settings_layers`
turns the keys of each layer into that layer's options, and
:mod:`graywsgi.contrib.chain` builds the chain from them.

Reserved, for layers not in this version: ``METRICS`` and every key
starting ``METRICS_`` (statsd metrics), ``OPENAPI`` and every key starting
``OPENAPI_`` or ``VALIDATION_`` (request pre-validation). Setting one
raises :class:`SettingsError` rather than being silently ignored.

A value of ``None`` means the setting is not set (so
``os.environ.get(...)`` can be used directly), except for
``QUERY_FALLBACK``, where ``None`` turns the query fallback off.

Errors
------

A bad value, an unknown key (with the closest known key suggested) or a
reserved key raises :class:`SettingsError`, a
:class:`~graywsgi.errors.ConfigurationError` whose message starts with the
key as the framework spells it (``GRAYWSGI_PERCENT: ...`` under Flask,
``GRAYWSGI['PERCENT']: ...`` under Django). It is raised when the chain is
built -- at start-up, never on a request.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing as t

from graywsgi.errors import ConfigurationError

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["SettingsError", "SETTINGS", "RESERVED_PREFIXES"]

#: Every setting graywsgi understands, by name (without a framework prefix).
SETTINGS: frozenset[str] = frozenset(
    {
        "TRUSTED_NETWORKS",
        "SIGNING_KEYS",
        "SIGNATURE_HEADER",
        "SIGNATURE_MAX_SKEW",
        "REQUIRED",
        "MAX_LENGTH",
        "FALLBACK_AFTER",
        "QUERY_FALLBACK",
        "RESOLVERS",
        "EXTRACTION_BREAKER",
        "EXTRACTION_REFUSE_WHEN_OPEN",
        "RULES",
        "RULES_CHECK_INTERVAL",
        "APPS",
        "PROXY_TIMEOUT",
        "PERCENT",
        "COLORS",
        "GUARD",
        "STATE",
        "STATE_CHECK_INTERVAL",
        "BREAKER",
        "GUARD_REFUSE_WHEN_OPEN",
        "GUARD_RETRY_ON_STABLE",
        "GUARD_LISTENERS",
    }
)

#: Setting name prefixes kept for layers that are not in this version,
#: and what each is for.
RESERVED_PREFIXES: t.Mapping[str, str] = {
    "METRICS": "statsd metrics (the Metrics layer)",
    "OPENAPI": "request pre-validation (the PreValidation layer)",
    "VALIDATION": "request pre-validation (the PreValidation layer)",
}

_NONE_IS_A_VALUE = frozenset({"QUERY_FALLBACK"})

KeyName = t.Callable[[str], str]
T = t.TypeVar("T")


class SettingsError(ConfigurationError):
    """A graywsgi setting that cannot work.

    :param setting: the key as the framework spells it
        (``GRAYWSGI_PERCENT``, ``GRAYWSGI['PERCENT']``).
    :param problem: what is wrong with it.
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _plain_key(name: str) -> str:
    return name


def _noop_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    raise AssertionError("graywsgi.contrib: the settings probe app was called")  # pragma: no cover


class _Settings:
    """Read settings by name, attributing every error to its key."""

    def __init__(self, values: t.Mapping[str, object], key: KeyName) -> None:
        self.key = key
        for name, value in values.items():
            self._check_name(name, value)
        # None means "not set" (``os.environ.get(...)`` in a settings file),
        # except where None is a value of its own.
        self.values = {
            name: value for name, value in values.items() if value is not None or name in _NONE_IS_A_VALUE
        }

    def _check_name(self, name: object, value: object) -> None:
        if not isinstance(name, str):
            raise SettingsError(self.key(repr(name)), "setting names are strings")
        for prefix, purpose in RESERVED_PREFIXES.items():
            if value is not None and (name == prefix or name.startswith(prefix + "_")):
                raise SettingsError(
                    self.key(name),
                    f"reserved for {purpose}, which this version of graywsgi does not have yet",
                )
            if name == prefix or name.startswith(prefix + "_"):
                return
        if name not in SETTINGS:
            if name.upper() in SETTINGS:
                hint = f"; did you mean {self.key(name.upper())}? (names are upper case)"
            else:
                close = difflib.get_close_matches(name, sorted(SETTINGS), n=1)
                hint = f"; did you mean {self.key(close[0])}?" if close else ""
            raise SettingsError(self.key(name), f"unknown graywsgi setting{hint}")

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, convert: t.Callable[[object], T], default: T) -> T:
        """The converted value of ``name``, or ``default`` when it is not set."""
        if name not in self.values:
            return default
        try:
            return convert(self.values[name])
        except SettingsError:
            raise
        except (ConfigurationError, TypeError, ValueError, ImportError) as exc:
            raise SettingsError(self.key(name), str(exc)) from exc

    def fail(self, name: str, problem: str) -> t.NoReturn:
        raise SettingsError(self.key(name), problem)


# -- converters: each checks one value and raises TypeError/ValueError/
# ConfigurationError with a message that does not repeat the key.


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be True or False, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number, got {value!r}")
    return float(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an int, got {value!r}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"must be a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"must be a list of strings; {item!r} is not a string")
    return items


def _mapping(value: object) -> t.Mapping[str, object]:
    if not isinstance(value, t.Mapping):
        raise TypeError(f"must be a dict, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise TypeError(f"keys must be strings; {name!r} is not")
    return t.cast(t.Mapping[str, object], value)


def _imported(value: object) -> object:
    """An object, or the object an import string names (``pkg.mod:attr`` or ``pkg.mod.attr``)."""
    if not isinstance(value, str):
        return value
    module_name, colon, attribute = value.partition(":")
    if not colon:
        module_name, _, attribute = value.rpartition(".")
    if not module_name or not attribute:
        raise ImportError(f"cannot import {value!r}: write it as 'package.module:name'")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise ImportError(f"cannot import {value!r}: {exc}") from None
    except AttributeError:
        raise ImportError(f"cannot import {value!r}: module {module_name!r} has no {attribute!r}") from None
    return target


def _callables(value: object) -> tuple[t.Callable[..., t.Any], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"must be a list of callables or import strings, got {value!r}")
    found: list[t.Callable[..., t.Any]] = []
    for item in value:
        target = _imported(item)
        if not callable(target):
            raise TypeError(f"{item!r} is not callable")
        found.append(target)
    return tuple(found)


def _keyword_object(factory: t.Callable[..., T], value: object, fields: tuple[str, ...] | None = None) -> T:
    """``factory(**value)``, with unknown fields reported by name; ``fields``
    names them where the signature cannot (a compiled class has none)."""
    if fields is None:
        fields = _parameters(factory)
    if not isinstance(value, t.Mapping):
        raise TypeError(f"must be a dict with fields from {', '.join(fields)}; got {value!r}")
    unknown = sorted(set(_mapping(value)) - set(fields))
    if unknown:
        raise TypeError(f"unknown field {', '.join(map(repr, unknown))}; fields are {', '.join(fields)}")
    return factory(**value)


def _parameters(factory: t.Callable[..., object]) -> tuple[str, ...]:
    skip = ("self", "clock")
    return tuple(name for name in inspect.signature(factory).parameters if name not in skip)


def _interval(value: object) -> float:
    seconds = _number(value)
    if not seconds >= 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"must be a number of seconds >= 0, got {value!r}")
    return seconds


def _positive(value: object) -> float:
    seconds = _number(value)
    if not 0 < seconds < float("inf"):
        raise ValueError(f"must be a number of seconds > 0, got {value!r}")
    return seconds
