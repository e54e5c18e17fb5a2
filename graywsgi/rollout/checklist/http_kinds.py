"""
The ``http`` and ``metrics_within_baseline`` check kinds
========================================================

Checks of the rollback checklist (:mod:`graywsgi.rollout.checklist`) whose
verdict comes from an HTTP GET, built on
:mod:`graywsgi.rollout.checklist.kind_base`; the other kinds are in
:mod:`graywsgi.rollout.checklist.state_kinds` and
:mod:`graywsgi.rollout.checklist.command_kinds`.

``http``
    GET ``url`` (``http://`` or ``https://`` only; redirects are not
    followed). Passes when the status is ``expect_status`` (a number or a
    list, default 200) and, if given, the JSON value at ``json_field``
    equals ``expect_value`` (without ``expect_value``, the field must
    exist; without ``json_field``, ``expect_value`` is compared with the
    whole body). ``headers`` are sent as given; ``bearer_token_env`` names
    an environment variable whose value is sent as
    ``Authorization: Bearer ...`` (tokens stay out of the file).
``metrics_within_baseline``
    GET a status document as served by graywsgi's admin app, i.e.
    :meth:`graywsgi.layers.router.Router.status` with a guard::

        {"breakers": {"canary": {"totals": {"requests": 1000, "errors": 41, "slow": 3}, ...}},
         "baseline": {"requests": 9000, "errors": 27, "slow": 20}}

    and compare ``route``'s error rate (``errors / requests``) with the
    baseline's (the default cluster's traffic over the same window).
    Passes when the route's rate is above the baseline's by at most
    ``max_deviation_percent`` of the baseline rate (10 means "within 10 %
    of baseline": 0.30 % allows up to 0.33 %) or by at most
    ``absolute_margin_percent`` percentage points (default 0) -- the
    margin is what makes an error-free baseline usable, since any error at
    all is an infinite relative deviation from 0. ``direction: either``
    also fails a rate that much *below* the baseline. Fails when either
    side has fewer than ``min_requests`` (default 1) requests. Where the
    numbers are is configurable: ``route_totals`` (default
    ``breakers.{route}.totals``; ``{route}`` is replaced by the route
    name), ``baseline_totals`` (default ``baseline``), the count fields
    ``requests_field`` (default ``requests``) and ``metric`` (default
    ``errors``; ``slow`` compares slow-call rates). A path is a dotted
    string or, for keys that contain dots, a list of keys and indexes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import typing as t
import urllib.error
import urllib.parse
import urllib.request

from graywsgi.rollout.checklist.kind_base import (
    _call_with_deadline,
    _Invalid,
    _Location,
    _Path,
    _Problem,
    _Runner,
    _statuses,
    _Verdict,
)
from graywsgi.rollout.checklist.results import CheckStatus
from graywsgi.rollout.checklist.text import _CONTROL, _show_choices
from graywsgi.rules.routing import json_path

__all__: list[str] = []

#: HTTP bodies are read up to this size; a larger one fails the check.
MAX_BODY = 1 << 20


def _parse_path(value: str | list[str | int]) -> _Path:
    if isinstance(value, str):
        return tuple(value.split("."))
    return tuple(value)


def _path_problem(value: str | list[str | int], location: _Location) -> list[_Problem]:
    if isinstance(value, str) and any(not part for part in value.split(".")):
        return [(location, f"{value!r} has an empty key; write keys that contain dots as a list")]
    return []


class _Missing(Exception):
    def __init__(self, where: _Path) -> None:
        self.where = where


def _resolve(document: t.Any, path: _Path) -> t.Any:
    """The value at ``path``; a digit string indexes a list.

    :raises _Missing: naming the part of the path that exists.
    """
    value = document
    for depth, part in enumerate(path):
        if isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, list) and (isinstance(part, int) or str(part).isdigit()) and int(part) < len(value):
            value = value[int(part)]
        else:
            raise _Missing(path[: depth + 1])
    return value


def _show_path(path: _Path) -> str:
    return json_path([int(p) if isinstance(p, str) and p.isdigit() else p for p in path])


def _json_equal(a: t.Any, b: t.Any) -> bool:
    """Equality as JSON means it: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _show_value(value: t.Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A probe checks the URL it was given: a 3xx is the answer, not a hop."""

    def redirect_request(self, *args: t.Any, **kwargs: t.Any) -> None:
        return None


class _FetchFailed(Exception):
    def __init__(self, reason: str, timed_out: bool) -> None:
        self.reason = reason
        self.timed_out = timed_out


def _http_get(url: str, headers: t.Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """GET ``url``: the status and at most :data:`MAX_BODY` + 1 bytes of body.

    :raises _FetchFailed: when no response arrives.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        response: t.Any = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise _FetchFailed(f"cannot reach {url}: {reason}", isinstance(reason, TimeoutError)) from None
    except TimeoutError:
        raise _FetchFailed(f"no response from {url} within {timeout:g}s", True) from None
    except (OSError, ValueError) as exc:  # e.g. a reset connection, a malformed response
        raise _FetchFailed(f"cannot reach {url}: {type(exc).__name__}: {exc}", False) from None
    try:
        with response:
            status = int(response.status if response.status is not None else response.code)
            body = response.read(MAX_BODY + 1)
    except TimeoutError:
        raise _FetchFailed(f"the body from {url} did not arrive within {timeout:g}s", True) from None
    except (OSError, ValueError) as exc:
        raise _FetchFailed(f"cannot read the body from {url}: {type(exc).__name__}: {exc}", False) from None
    return status, body


def _request_headers(headers: t.Mapping[str, str], token_env: str | None) -> dict[str, str]:
    out = {"Accept": "application/json", "User-Agent": "graywsgi-checklist", **headers}
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise _FetchFailed(f"environment variable {token_env} (bearer_token_env) is not set", False)
        if _CONTROL.search(token):
            raise _FetchFailed(f"environment variable {token_env} holds control characters", False)
        out["Authorization"] = f"Bearer {token}"
    return out


def _url_problems(url: str, location: _Location) -> list[_Problem]:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError as exc:
        return [(location, f"malformed URL: {exc}")]
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return [(location, f"{url!r} is not an http:// or https:// URL with a host")]
    return []


@dataclasses.dataclass(frozen=True)
class _HttpProbe(_Runner):
    url: str
    expect_status: tuple[int, ...]
    field: _Path | None
    expect_value: t.Any
    has_expect_value: bool
    headers: t.Mapping[str, str]
    token_env: str | None

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems = _url_problems(options["url"], (*location, "url"))
        if "json_field" in options:
            problems += _path_problem(options["json_field"], (*location, "json_field"))
        if problems:
            raise _Invalid(problems)
        return cls(
            url=options["url"],
            expect_status=_statuses(options.get("expect_status", 200)),
            field=_parse_path(options["json_field"]) if "json_field" in options else None,
            expect_value=options.get("expect_value"),
            has_expect_value="expect_value" in options,
            headers=dict(options.get("headers", {})),
            token_env=options.get("bearer_token_env"),
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the request was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        try:
            status, body = _http_get(self.url, _request_headers(self.headers, self.token_env), timeout)
        except _FetchFailed as exc:
            return _Verdict(CheckStatus.TIMED_OUT if exc.timed_out else CheckStatus.FAILED, exc.reason)
        details: dict[str, t.Any] = {"url": self.url, "status": status}
        if status not in self.expect_status:
            return _Verdict(
                CheckStatus.FAILED, f"HTTP {status}, expected {_show_choices(self.expect_status)}", details
            )
        if self.field is None and not self.has_expect_value:
            return _Verdict(CheckStatus.PASSED, f"HTTP {status}", details)
        if len(body) > MAX_BODY:
            return _Verdict(CheckStatus.FAILED, f"HTTP {status} but the body is larger than {MAX_BODY} bytes", details)
        try:
            document = json.loads(body)
        except ValueError as exc:
            return _Verdict(CheckStatus.FAILED, f"HTTP {status} but the body is not JSON: {exc}", details)
        where = "the body"
        value = document
        if self.field is not None:
            where = _show_path(self.field)
            try:
                value = _resolve(document, self.field)
            except _Missing as exc:
                return _Verdict(
                    CheckStatus.FAILED, f"HTTP {status} but the body has no {_show_path(exc.where)}", details
                )
        details["value"] = value
        if self.has_expect_value and not _json_equal(value, self.expect_value):
            return _Verdict(
                CheckStatus.FAILED,
                f"HTTP {status} but {where} is {_show_value(value)}, expected {_show_value(self.expect_value)}",
                details,
            )
        return _Verdict(CheckStatus.PASSED, f"HTTP {status}, {where} = {_show_value(value)}", details)


_METRIC_NAMES = {"errors": "error rate", "slow": "slow-call rate"}


@dataclasses.dataclass(frozen=True)
class _MetricsWithinBaseline(_Runner):
    url: str
    headers: t.Mapping[str, str]
    token_env: str | None
    route: str
    max_deviation: float  # a fraction: 0.10 for 10 %
    absolute_margin: float  # a fraction: 0.001 for 0.1 percentage points
    either_direction: bool
    metric: str
    requests_field: str
    route_totals: _Path
    baseline_totals: _Path
    min_requests: int

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems = _url_problems(options["url"], (*location, "url"))
        for key in ("route_totals", "baseline_totals"):
            if key in options:
                problems += _path_problem(options[key], (*location, key))
        if problems:
            raise _Invalid(problems)
        route = options["route"]
        route_totals = tuple(
            part.replace("{route}", route) if isinstance(part, str) else part
            for part in _parse_path(options.get("route_totals", ["breakers", "{route}", "totals"]))
        )
        return cls(
            url=options["url"],
            headers=dict(options.get("headers", {})),
            token_env=options.get("bearer_token_env"),
            route=route,
            max_deviation=float(options["max_deviation_percent"]) / 100,
            absolute_margin=float(options.get("absolute_margin_percent", 0)) / 100,
            either_direction=options.get("direction", "above") == "either",
            metric=options.get("metric", "errors"),
            requests_field=options.get("requests_field", "requests"),
            route_totals=route_totals,
            baseline_totals=_parse_path(options.get("baseline_totals", "baseline")),
            min_requests=int(options.get("min_requests", 1)),
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._compare(timeout), "the request was abandoned")

    def _counts(self, document: t.Any, path: _Path) -> tuple[int, int]:
        try:
            totals = _resolve(document, path)
        except _Missing as exc:
            raise _FetchFailed(f"the status document has no {_show_path(exc.where)}", False) from None
        counts = []
        for field in (self.requests_field, self.metric):
            value = totals.get(field) if isinstance(totals, dict) else None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _FetchFailed(
                    f"{_show_path((*path, field))} is {_show_value(value)}, expected a count (an integer >= 0)", False
                )
            counts.append(value)
        requests, bad = counts
        if bad > requests:
            raise _FetchFailed(f"{_show_path(path)} counts {bad} {self.metric} in {requests} requests", False)
        return requests, bad

    def _compare(self, timeout: float) -> _Verdict:
        try:
            status, body = _http_get(self.url, _request_headers(self.headers, self.token_env), timeout)
            if status != 200:
                raise _FetchFailed(f"status document {self.url}: HTTP {status}", False)
            if len(body) > MAX_BODY:
                raise _FetchFailed(f"status document {self.url} is larger than {MAX_BODY} bytes", False)
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise _FetchFailed(f"status document {self.url} is not JSON: {exc}", False) from None
            route_requests, route_bad = self._counts(document, self.route_totals)
            base_requests, base_bad = self._counts(document, self.baseline_totals)
        except _FetchFailed as exc:
            return _Verdict(CheckStatus.TIMED_OUT if exc.timed_out else CheckStatus.ERROR, exc.reason)
        label = _METRIC_NAMES.get(self.metric, f"{self.metric} rate")
        details: dict[str, t.Any] = {
            "route": self.route,
            "metric": self.metric,
            "route_requests": route_requests,
            "route_count": route_bad,
            "baseline_requests": base_requests,
            "baseline_count": base_bad,
        }
        for who, requests in ((f"route {self.route!r}", route_requests), ("the baseline", base_requests)):
            if requests < self.min_requests:
                return _Verdict(
                    CheckStatus.FAILED,
                    f"{who} has {requests} requests in the window; at least {self.min_requests} needed to compare",
                    details,
                )
        route_rate = route_bad / route_requests if route_requests else 0.0
        base_rate = base_bad / base_requests if base_requests else 0.0
        difference = route_rate - base_rate
        counted = abs(difference) if self.either_direction else difference
        allowed = max(base_rate * self.max_deviation, self.absolute_margin)
        details.update(route_rate=route_rate, baseline_rate=base_rate, allowed_difference=allowed)
        relative = f"{difference / base_rate * 100:+.1f} % relative" if base_rate > 0 else "baseline is 0"
        limit = f"allowed {self.max_deviation * 100:g} %"
        if self.absolute_margin:
            limit += f" or {self.absolute_margin * 100:g} points"
        reason = (
            f"{self.route} {label} {_pct(route_rate)} ({route_bad}/{route_requests}) vs baseline "
            f"{_pct(base_rate)} ({base_bad}/{base_requests}): {relative}, {limit}"
        )
        passed = counted <= allowed + 1e-12
        return _Verdict(CheckStatus.PASSED if passed else CheckStatus.FAILED, reason, details)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"
