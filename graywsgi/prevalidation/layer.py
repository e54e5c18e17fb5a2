"""
PreValidation
=============

Checks gray requests against the service's OpenAPI contract before they
reach the new code. The rules are written in the OpenAPI document itself,
next to each operation, as ``x-gray-rules`` (see :mod:`graywsgi.prevalidation.gray_rules`
and the guide, ``docs/prevalidation.md``); a request that breaks one is
answered ``400`` with an RFC 9457 problem listing every failed field, and
never reaches the canary.

.. code-block:: python

    from graywsgi import Extraction
    from graywsgi.prevalidation.layer import PreValidation

    app.wsgi_app = Extraction(PreValidation(app.wsgi_app, openapi="openapi.yaml"))

At start-up
-----------

Everything is loaded, checked and compiled in ``__init__``, which raises
:class:`~graywsgi.prevalidation.openapi_model.OpenAPIError` (a
:class:`~graywsgi.errors.ConfigurationError`) naming the document, the
operation and the JSON pointer of every problem:

- the document is read (YAML or JSON) with every file its ``$ref`` s reach
  (files next to it; nothing is fetched from the network) and checked with
  ``openapi-spec-validator`` (OpenAPI 3.0 and 3.1);
- each operation's ``x-gray-rules`` is checked against its published schema
  (``graywsgi/schema/x-gray-rules.schema.json``);
- each rule must name a field the operation defines: a parameter of that
  name and place, or a request-body property along the JSON pointer;
- each constraint is compiled once into a jsonschema (draft 2020-12)
  validator with a format checker; a format that cannot really be checked
  is refused rather than silently passing everything.

Per request
-----------

1. The operation is found from the method and ``PATH_INFO`` (less
   ``base_path``) in a trie of path segments -- no scan over the paths.
   Operations without rules are not in it: their requests pass untouched.
2. Only the rules that apply to the request run (``applies_to``): by
   default, to *gray* requests -- those whose context carries
   ``X-Version``, ``X-Canary-ID``, an ``X-Traffic-Color`` other than
   ``stable``, or a route other than ``stable`` chosen by a split that ran
   before. Non-gray requests are untouched unless a rule says ``all``.
3. Query, header and path values are text; each is read as the type the
   rule's schema (or else the parameter's declared schema) gives --
   ``integer``, ``number``, ``boolean``, ``array`` (repeated query
   parameters, or comma-separated) -- then validated.
4. The body is read only if an applicable rule is about the body.

A violation answers ``400 application/problem+json`` with one entry per
failed field (at most 20 are listed, ``errors_omitted`` counts the rest)::

    {"type": "about:blank", "title": "Bad Request", "status": 400,
     "detail": "2 fields of this request break the gray rules of GET /orders.",
     "operation": "GET /orders",
     "errors": [
       {"where": "query.limit", "expected": "maximum: 50", "received": "500",
        "message": "500 is greater than the maximum of 50"},
       {"where": "body#/items/0/qty", ...}]}

``expected``, ``received`` and ``message`` are cut to 120 characters;
``received`` is ``null`` for an absent field.

The body
--------

When a rule needs it, the body is read once, bounded by ``max_body``
(``413`` past it), handed to the application as the same bytes, and
parsed as JSON, form or multipart; see :mod:`graywsgi.prevalidation.body`.

Failing open
------------

An unexpected error inside pre-validation is logged on the
``graywsgi.prevalidation`` logger and the request is served unvalidated:
graywsgi never turns its own bug into a 500. If the body had been read by
then, the application still receives it whole.

Place in the chain
------------------

PreValidation reads the gray context, so :class:`~graywsgi.layers.extraction.Extraction`
must run before it (when none did, PreValidation runs one itself, like the
Router). Rules selected by ``routes`` need the route, so they apply only
where a split ran first -- for example when PreValidation wraps the canary
application that a :class:`~graywsgi.layers.router.Router` dispatches to.

Security note: the gray markers that select rules come from request
headers; use a :class:`~graywsgi.httputil.trust.TrustPolicy` in Extraction so that
only trusted sources can choose them (or use ``applies_to="all"``).
"""

from __future__ import annotations

import json
import logging
import os
import typing as t

from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.errors import ConfigurationError, problem_response
from graywsgi.layers.extraction import Extraction
from graywsgi.prevalidation.gray_rules import (
    FieldError,
    OperationRules,
    Selector,
    body_kind,
    cap,
    compile_gray_rules,
    compile_selector,
    is_gray,
)
from graywsgi.layers.events import note, note_internal_error
from graywsgi.prevalidation.openapi import OpenAPIDocument, PathIndex, load_openapi
from graywsgi.prevalidation.body import (
    _ABSENT,
    _MISSING,
    _check_body_rule,
    _Form,
    _parse_multipart,
    _parse_pairs,
    _parse_urlencoded,
    _read_body,
    _Refusal,
    _reject_constant,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["PreValidation", "MAX_LISTED_ERRORS", "DEFAULT_MAX_BODY"]

logger = logging.getLogger("graywsgi.prevalidation")

#: The default ``max_body``: 1 MiB.
DEFAULT_MAX_BODY = 1024 * 1024

#: At most this many failed fields are listed in a 400 answer.
MAX_LISTED_ERRORS = 20


class PreValidation:
    """Check gray requests against the ``x-gray-rules`` of an OpenAPI document.

    >>> import pathlib, tempfile
    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> spec = pathlib.Path(tempfile.mkdtemp()) / "openapi.yaml"
    >>> _ = spec.write_text('''
    ... openapi: 3.1.0
    ... info: {title: Shop, version: "1"}
    ... paths:
    ...   /orders:
    ...     get:
    ...       parameters: [{name: limit, in: query, schema: {type: integer}}]
    ...       responses: {"200": {description: ok}}
    ...       x-gray-rules:
    ...         rules: [{field: query.limit, schema: {maximum: 50}}]
    ... ''')
    >>> def app(environ, start_response):
    ...     return Response("ok")(environ, start_response)
    >>> client = Client(PreValidation(app, openapi=spec))
    >>> client.get("/orders?limit=500", headers={"X-Version": "2.0.0"}).status_code
    400
    >>> client.get("/orders?limit=500").status_code  # not gray: untouched
    200

    :param app: the WSGI application to wrap.
    :param openapi: the OpenAPI 3.0/3.1 document (a YAML or JSON file).
    :param max_body: the largest body read for validation, in bytes
        (default 1 MiB); a larger one is answered 413.
    :param applies_to: which requests rules that do not say apply to:
        ``"gray"`` (default), ``"all"``, or a mapping of ``versions``,
        ``routes`` and ``colors``.
    :param stable: routes and traffic colours that are *not* gray
        (default ``("stable",)``).
    :param base_path: a prefix of ``PATH_INFO`` that the document's paths
        do not include (e.g. ``"/api/v2"``); other paths pass untouched.
    :raises ~graywsgi.prevalidation.openapi_model.OpenAPIError: the document or its rules are
        wrong (naming the document, operation and JSON pointer).
    :raises ConfigurationError: an option is wrong.
    """

    def __init__(
        self,
        app: WSGIApplication,
        openapi: str | os.PathLike[str],
        *,
        max_body: int = DEFAULT_MAX_BODY,
        applies_to: str | t.Mapping[str, t.Sequence[str]] = "gray",
        stable: t.Iterable[str] = ("stable",),
        base_path: str = "",
    ) -> None:
        self.app = app
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ConfigurationError(f"max_body must be a positive int (bytes), got {max_body!r}")
        try:
            default: Selector = compile_selector(applies_to)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if isinstance(stable, str):
            raise ConfigurationError(f"stable must be a collection of names, got the string {stable!r}")
        stable_names = frozenset(stable)
        if not all(isinstance(name, str) and name for name in stable_names):
            raise ConfigurationError(f"stable must hold non-empty strings, got {sorted(map(repr, stable_names))}")
        if not isinstance(base_path, str) or (base_path and (not base_path.startswith("/") or base_path.endswith("/"))):
            raise ConfigurationError(f"base_path must be '' or start with '/' and not end with '/', got {base_path!r}")
        if not isinstance(openapi, (str, os.PathLike)):
            raise ConfigurationError(f"openapi must be a file path, got {openapi!r}")
        self.max_body = max_body
        self.applies_to = default
        self.stable = frozenset(name.lower() for name in stable_names) | stable_names
        self.base_path = base_path
        self.document: OpenAPIDocument = load_openapi(openapi)
        #: every operation's compiled rules, in document order
        self.operations: tuple[OperationRules, ...] = tuple(compile_gray_rules(self.document, default))
        self._index: PathIndex[OperationRules] = PathIndex()
        for compiled in self.operations:
            if compiled.rules:
                self._index.add(compiled.operation.method, compiled.operation.path, compiled)
        self._standalone = Extraction(self)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        context = environ.get(ENVIRON_KEY)
        if not isinstance(context, GrayContext):
            return self._standalone(environ, start_response)
        try:
            refusal = self.check(environ, context)
        except Exception:
            logger.exception("graywsgi pre-validation failed; serving the request unvalidated")
            note_internal_error(environ, "prevalidation")
            refusal = None
        if refusal is None:
            return self.app(environ, start_response)
        errors = refusal.errors
        extra: dict[str, object] = {"errors": [error.as_json() for error in errors[:MAX_LISTED_ERRORS]]}
        if len(errors) > MAX_LISTED_ERRORS:
            extra["errors_omitted"] = len(errors) - MAX_LISTED_ERRORS
        operation = environ.get("graywsgi.operation")
        if operation is not None:
            extra = {"operation": operation, **extra}
        note(environ, "validation.failed", operation=str(operation or "unmatched"), status=str(refusal.status))
        return problem_response(start_response, refusal.status, refusal.detail, extra=extra)

    # -- checking ----------------------------------------------------------------

    def check(self, environ: WSGIEnvironment, context: GrayContext | None) -> _Refusal | None:
        """Check one request; return why it is refused, or ``None`` to serve it.

        Reading the body (when a rule needs it) replaces ``wsgi.input`` and
        ``CONTENT_LENGTH`` in ``environ`` with the same bytes.
        """
        path = environ.get("PATH_INFO") or "/"
        base_path = self.base_path
        if base_path:
            if path == base_path:
                path = "/"
            elif path.startswith(base_path) and path[len(base_path)] == "/":
                path = path[len(base_path):]
            else:
                return None
        path_encoding = "latin-1"
        if not path.isascii():
            path, path_encoding = _wsgi_text(path)
        found = self._index.match(environ.get("REQUEST_METHOD") or "GET", path)
        if found is None:
            return None
        compiled, path_params = found
        gray = is_gray(context, self.stable)
        rules = [rule for rule in compiled.rules if rule.selector.applies(context, gray)]
        if not rules:
            return None
        environ["graywsgi.operation"] = compiled.label
        errors: list[FieldError] = []
        query: dict[str, list[bytes | None]] | None = None
        body: object = _MISSING
        for rule in rules:
            source = rule.source
            if source == "query":
                if query is None:
                    query = _parse_query(environ.get("QUERY_STRING") or "")
                values = query.get(rule.name)
                if values is not None and None in values:
                    errors.append(FieldError(rule.field, "percent-encoded text", None, "the value has a malformed %-escape"))
                    continue
                rule.check_text(t.cast("list[bytes] | None", values), errors)
            elif source == "header":
                header = environ.get(rule.name)
                rule.check_text(None if header is None else [_wire_bytes(header.strip(" \t"))], errors)
            elif source == "path":
                segment = path_params.get(rule.name)
                rule.check_text(None if segment is None else [segment.encode(path_encoding)], errors)
            else:
                if body is _MISSING:
                    outcome = self._body(environ, compiled)
                    if isinstance(outcome, _Refusal):
                        return outcome
                    body = outcome
                _check_body_rule(rule, body, errors)
        if not errors:
            return None
        count = len(errors)
        noun = "field" if count == 1 else "fields"
        verb = "breaks" if count == 1 else "break"
        detail = f"{count} {noun} of this request {verb} the gray rules of {compiled.label}."
        logger.info(
            "graywsgi pre-validation refused %s: %s (request %s)",
            compiled.label,
            ", ".join(error.where for error in errors[:MAX_LISTED_ERRORS]),
            context.request_id if context is not None else "-",
        )
        return _Refusal(400, detail, errors)

    def _body(self, environ: WSGIEnvironment, compiled: OperationRules) -> object:
        """Read and parse the body once; the refusal, ``_ABSENT`` or the parsed body."""
        data = _read_body(environ, self.max_body)
        if isinstance(data, _Refusal):
            return data
        if not data:
            return _ABSENT
        content_type = environ.get("CONTENT_TYPE") or ""
        media_type = content_type.partition(";")[0].strip(" \t").lower()
        kind = body_kind(media_type)
        if kind is None or kind not in compiled.body_kinds:
            wanted = " or ".join(compiled.body_media_types)
            received = media_type or "(no Content-Type)"
            return _Refusal(
                400,
                f"{compiled.label} takes a body of type {wanted}, not {received}.",
                [FieldError("body", f"Content-Type: {wanted}", cap(received), "the body's media type is not one the operation declares")],
            )
        if kind == "json":
            try:
                return json.loads(data, parse_constant=_reject_constant)
            except RecursionError:
                reason = "nested too deeply"
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
                reason = str(exc)
            return _Refusal(
                400,
                f"The request body is not valid JSON: {cap(reason)}.",
                [FieldError("body", "JSON (RFC 8259, UTF-8)", None, cap(f"invalid JSON: {reason}"))],
            )
        if kind == "form":
            return _Form(_parse_urlencoded(data))
        return _parse_multipart(data, content_type, self.max_body)


def _parse_query(query_string: str) -> dict[str, list[bytes | None]]:
    """Every parameter's values (``None`` for a malformed escape), by name."""
    out: dict[str, list[bytes | None]] = {}
    if not query_string:
        return out
    try:
        raw = query_string.encode("latin-1")
    except UnicodeEncodeError:
        raw = query_string.encode("utf-8")
    return _parse_pairs(raw, out)


def _wire_bytes(value: str) -> bytes:
    """A WSGI (latin-1) string as the bytes that were on the wire."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _wsgi_text(path: str) -> tuple[str, str]:
    """A WSGI path as text, and the encoding that gives its bytes back."""
    raw = _wire_bytes(path)
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return path, "latin-1"
