"""
Propagation
===========

Carries the gray context of the request being handled into everything the
request causes: outgoing HTTP calls, log records and work handed to other
threads -- so a whole call chain stays on the same version and every log
line can be tied to its request.

Outgoing HTTP calls
-------------------

:func:`outgoing_headers` gives the headers for the current request; every
adapter below fills them into an outgoing request **only where that request
does not already set them** (names compared case-insensitively):

===================  ========================================================
Header               Value
===================  ========================================================
``X-Gray-ID``        ``current.gray_id``
``X-Env``            ``current.env``
``X-Version``        ``current.version``
``X-Canary-ID``      ``current.canary_id``
``X-Traffic-Color``  ``current.traffic_color``
``X-Request-ID``     ``current.request_id``
``traceparent``      the incoming ``traceparent``, continued (passed on as
                     it came: graywsgi records no span of its own); else a
                     new one started from the request id (below)
``baggage``          W3C Baggage entries ``gray.id``, ``gray.env``,
                     ``gray.version``, ``gray.canary_id``,
                     ``gray.traffic_color`` and ``gray.route``
===================  ========================================================

A value is sent only if it is a valid RFC 9110 field value
(:func:`graywsgi.httputil.headers.valid_field_value`) and ASCII; a non-ASCII
identifier goes only into ``baggage``, percent-encoded as UTF-8. Missing
identifiers are left out. Outside a request nothing is added.

A started ``traceparent`` is ``00-<trace id>-<parent id>-00``: the trace id
is the request id when that is 32 lowercase hex digits, else a hash of it,
so every call made for one request carries the same trace id, and
:class:`ContextFilter` logs that id too. The flags say *not sampled*,
because nothing recorded a span.

``baggage`` follows the W3C Baggage format: ``key=value`` members separated
by ``,``; values percent-encoded (everything outside the spec's
``baggage-octet`` set, and ``%``, as UTF-8 ``%XX``). When the outgoing
request already has a ``baggage`` header, members are added only for keys
it does not have, and only whole members, while the header stays within
the spec's limits: at most 64 members and 8192 bytes. An existing header
that cannot be parsed is left as it is.

Adapters, each optional (the library is imported only when the adapter is
used, and none is a dependency of graywsgi):

.. code-block:: python

    from graywsgi import propagation

    session = propagation.requests_session()            # requests
    http = propagation.instrument_urllib3(urllib3.PoolManager())   # urllib3
    client = httpx.Client(event_hooks={"request": [propagation.httpx_hook]})  # httpx
    headers = propagation.inject({"Accept": "application/json"})   # anything else

Logging
-------

:class:`ContextFilter` adds the context's fields to every log record as
attributes ``gray_request_id``, ``gray_gray_id``... (prefix configurable),
with ``"-"`` (or the ``default`` you choose, e.g. ``None``) outside a
request. Attach it to a *handler*, so that records propagated from child
loggers get the fields too::

    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s [req=%(gray_request_id)s route=%(gray_route)s"
        " trace=%(gray_trace_id)s] %(name)s: %(message)s"))

Structured loggers that read record attributes (``python-json-logger``,
structlog's ``ProcessorFormatter``) see the same attributes.

Threads
-------

:class:`ContextExecutor` is a ``ThreadPoolExecutor`` whose tasks run in a
copy of the submitting thread's context (:func:`graywsgi.core.context.carry_context`),
so a task submitted inside a request sees that request's ``current``; the
pool's threads keep nothing once a task is done.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import logging
import re
import typing as t

from graywsgi.core.context import GrayContext, carry_context, get_current
from graywsgi.httputil.headers import valid_field_value

__all__ = [
    "HEADERS",
    "BAGGAGE_KEYS",
    "BAGGAGE_MAX_MEMBERS",
    "BAGGAGE_MAX_BYTES",
    "outgoing_headers",
    "inject",
    "traceparent",
    "trace_id",
    "baggage",
    "requests_session",
    "instrument_requests",
    "instrument_urllib3",
    "httpx_hook",
    "instrument_httpx",
    "ContextFilter",
    "ContextExecutor",
    "carry_context",
]

#: Header name -> context field, in the order they are added.
HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Gray-ID", "gray_id"),
    ("X-Env", "env"),
    ("X-Version", "version"),
    ("X-Canary-ID", "canary_id"),
    ("X-Traffic-Color", "traffic_color"),
    ("X-Request-ID", "request_id"),
)

#: W3C Baggage key -> context field.
BAGGAGE_KEYS: tuple[tuple[str, str], ...] = (
    ("gray.id", "gray_id"),
    ("gray.env", "env"),
    ("gray.version", "version"),
    ("gray.canary_id", "canary_id"),
    ("gray.traffic_color", "traffic_color"),
    ("gray.route", "route"),
)

#: The W3C Baggage limits every platform must propagate up to.
BAGGAGE_MAX_MEMBERS = 64
BAGGAGE_MAX_BYTES = 8192

_HEX32 = re.compile(r"[0-9a-f]{32}")
# baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, and "%" is encoded too
_BAGGAGE_SAFE = frozenset(
    b for b in range(0x21, 0x7F) if b not in (0x22, 0x2C, 0x3B, 0x5C, 0x25)
)


def _context(context: GrayContext | None) -> GrayContext | None:
    return context if context is not None else get_current()


def trace_id(context: GrayContext | None = None) -> str | None:
    """The trace id outgoing calls carry: the incoming one, or one derived
    from the request id. ``None`` outside a request."""
    context = _context(context)
    if context is None:
        return None
    if context.trace_parent is not None:
        return context.trace_parent[3:35]
    request_id = context.request_id
    if _HEX32.fullmatch(request_id) and request_id != "0" * 32:
        return request_id
    return hashlib.blake2b(request_id.encode("utf-8"), digest_size=16, person=b"graywsgi-trace").hexdigest()


def traceparent(context: GrayContext | None = None) -> str | None:
    """The ``traceparent`` for outgoing calls: continued, or started.

    >>> traceparent(GrayContext(request_id="0af7651916cd43dd8448eb211c80319c"))  # doctest: +ELLIPSIS
    '00-0af7651916cd43dd8448eb211c80319c-...-00'
    """
    context = _context(context)
    if context is None:
        return None
    if context.trace_parent is not None:
        return context.trace_parent
    parent = hashlib.blake2b(context.request_id.encode("utf-8"), digest_size=8, person=b"graywsgi-span").hexdigest()
    if parent == "0" * 16:  # pragma: no cover - one chance in 2**64
        parent = "0" * 15 + "1"
    return f"00-{trace_id(context)}-{parent}-00"


def _baggage_value(text: str) -> str:
    return "".join(chr(b) if b in _BAGGAGE_SAFE else f"%{b:02X}" for b in text.encode("utf-8"))


def _baggage_keys(header: str) -> set[str] | None:
    """The keys of an existing baggage header; ``None`` if it is not parseable."""
    keys: set[str] = set()
    for member in header.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        key, sep, _rest = member.partition(";")[0].partition("=")
        if not sep or not key.strip(" \t"):
            return None
        keys.add(key.strip(" \t"))
    return keys


def baggage(context: GrayContext | None = None, existing: str | None = None) -> str | None:
    """The ``baggage`` header for outgoing calls, merged into ``existing``.

    :param context: the context (default: the current one).
    :param existing: the header the outgoing request already has, if any.
    :return: the header value, or ``None`` if there is nothing to send.

    >>> baggage(GrayContext(request_id="r", gray_id="user 7", route="canary"))
    'gray.id=user%207,gray.route=canary'
    >>> baggage(GrayContext(request_id="r", gray_id="u1", env="prod"), existing="gray.env=qa")
    'gray.env=qa,gray.id=u1'
    """
    context = _context(context)
    if context is None:
        return existing
    members: list[str] = []
    size = 0
    present: set[str] = set()
    if existing is not None and existing.strip(" \t"):
        keys = _baggage_keys(existing)
        if keys is None:
            return existing
        present = keys
        members = [existing.strip(" \t")]
        size = len(members[0].encode("utf-8"))
    count = len(present)
    for key, field in BAGGAGE_KEYS:
        value = getattr(context, field)
        if not value or key in present:
            continue
        member = f"{key}={_baggage_value(value)}"
        added = len(member) + (1 if members else 0)
        if count + 1 > BAGGAGE_MAX_MEMBERS or size + added > BAGGAGE_MAX_BYTES:
            break
        members.append(member)
        size += added
        count += 1
    return ",".join(members) if members else None


def _valid(value: str | None) -> bool:
    return value is not None and value.isascii() and valid_field_value(value) and value == value.strip(" \t")


def outgoing_headers(context: GrayContext | None = None) -> dict[str, str]:
    """The headers outgoing calls made for this request should carry.

    :param context: the context (default: the current one).
    :return: header name -> value; empty outside a request.

    >>> outgoing_headers(GrayContext(request_id="0af7651916cd43dd8448eb211c80319c", env="prod"))["X-Env"]
    'prod'
    """
    context = _context(context)
    if context is None:
        return {}
    headers: dict[str, str] = {}
    for name, field in HEADERS:
        value = getattr(context, field)
        if _valid(value):
            headers[name] = value
    parent = traceparent(context)
    if _valid(parent):
        headers["traceparent"] = t.cast(str, parent)
    value = baggage(context)
    if value is not None:
        headers["baggage"] = value
    return headers


Headers = t.TypeVar("Headers", bound=t.MutableMapping[str, t.Any])
T = t.TypeVar("T")


def inject(headers: Headers, context: GrayContext | None = None) -> Headers:
    """Add the context's headers to ``headers`` where they are not set.

    Works with a ``dict`` and with the case-insensitive header mappings of
    requests, urllib3 and httpx; names already present in any case are left
    alone (``baggage`` is merged member by member).

    :return: ``headers`` itself.

    >>> inject({"x-env": "qa"}, GrayContext(request_id="r-1", env="prod"))["x-env"]
    'qa'
    """
    context = _context(context)
    if context is None:
        return headers
    present = {str(name).lower(): name for name in headers}
    for name, value in outgoing_headers(context).items():
        lower = name.lower()
        if lower not in present:
            headers[name] = value
        elif lower == "baggage":
            existing = headers[present[lower]]
            if isinstance(existing, bytes):
                existing = existing.decode("latin-1")
            merged = baggage(context, existing)
            if merged is not None and merged != existing and _valid(merged):
                headers[present[lower]] = merged
    return headers


# -- requests -----------------------------------------------------------------


def instrument_requests(session: t.Any) -> t.Any:
    """Make a ``requests.Session`` add the context's headers to every request it sends.

    Wraps the session's ``send`` (which ``session.get()``, ``request()``
    and redirects all go through). Calling it twice is harmless.

    :return: the same session.
    """
    if getattr(session, "_graywsgi_propagation", False):
        return session
    send = session.send

    @functools.wraps(send)
    def send_with_context(request: t.Any, **kwargs: t.Any) -> t.Any:
        inject(request.headers)
        return send(request, **kwargs)

    session.send = send_with_context
    session._graywsgi_propagation = True
    return session


def requests_session() -> t.Any:
    """A new ``requests.Session`` that propagates the context (needs ``requests``)."""
    import importlib

    return instrument_requests(importlib.import_module("requests").Session())


# -- urllib3 ------------------------------------------------------------------


def instrument_urllib3(pool: t.Any) -> t.Any:
    """Make a urllib3 ``PoolManager``, ``ProxyManager`` or connection pool
    add the context's headers to every request (redirects included).

    The headers passed to a request (or, when none are, the pool's own
    ``headers``) are copied, never changed in place.

    :return: the same pool.
    """
    if getattr(pool, "_graywsgi_propagation", False):
        return pool
    import importlib

    urllib3 = importlib.import_module("urllib3")
    header_dict = urllib3.HTTPHeaderDict
    is_manager = isinstance(pool, urllib3.PoolManager)
    urlopen = pool.urlopen

    @functools.wraps(urlopen)
    def urlopen_with_context(method: str, url: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if get_current() is None:
            return urlopen(method, url, *args, **kwargs)
        if not is_manager and len(args) >= 2:  # HTTPConnectionPool.urlopen(method, url, body, headers, ...)
            args = (args[0], inject(header_dict(args[1] if args[1] is not None else pool.headers)), *args[2:])
        else:
            given = kwargs.get("headers")
            kwargs["headers"] = inject(header_dict(given if given is not None else pool.headers))
        return urlopen(method, url, *args, **kwargs)

    pool.urlopen = urlopen_with_context
    pool._graywsgi_propagation = True
    return pool


# -- httpx --------------------------------------------------------------------


def httpx_hook(request: t.Any) -> None:
    """An httpx ``request`` event hook (sync ``httpx.Client``) that adds the headers.

    ``httpx.Client(event_hooks={"request": [httpx_hook]})``
    """
    inject(request.headers)


def instrument_httpx(client: t.Any) -> t.Any:
    """Add :func:`httpx_hook` to an ``httpx.Client``'s request hooks (once).

    :return: the same client.
    """
    hooks = client.event_hooks
    requests_hooks = list(hooks.get("request", []))
    if httpx_hook not in requests_hooks:
        hooks["request"] = [*requests_hooks, httpx_hook]
        client.event_hooks = hooks
    return client


# -- logging ------------------------------------------------------------------

#: Record attribute (after the prefix) -> how to read it from a context.
_LOG_FIELDS: tuple[tuple[str, t.Callable[[GrayContext], object]], ...] = (
    ("request_id", lambda c: c.request_id),
    ("gray_id", lambda c: c.gray_id),
    ("env", lambda c: c.env),
    ("version", lambda c: c.version),
    ("canary_id", lambda c: c.canary_id),
    ("traffic_color", lambda c: c.traffic_color),
    ("route", lambda c: c.route),
    ("group", lambda c: c.group),
    ("rules_version", lambda c: c.rules_version),
    ("degrade_level", lambda c: int(c.degrade_level)),
    ("trace_id", trace_id),
)


class ContextFilter(logging.Filter):
    """Add the gray context's fields to each log record (never filters one out).

    Attributes, each ``prefix`` + name: ``request_id``, ``gray_id``,
    ``env``, ``version``, ``canary_id``, ``traffic_color``, ``route``,
    ``group``, ``rules_version``, ``degrade_level`` (an int) and
    ``trace_id``. A field the context does not have -- or every field,
    outside a request -- is ``default``. An attribute the record already
    has (from ``extra=``) is left alone.

    >>> record = logging.LogRecord("app", logging.INFO, __file__, 1, "hi", None, None)
    >>> ContextFilter().filter(record), record.gray_request_id, record.gray_route
    (True, '-', '-')

    :param name: passed to :class:`logging.Filter` (ignored for filtering:
        every record passes).
    :param prefix: attribute name prefix.
    :param default: the value of missing fields.
    """

    def __init__(self, name: str = "", *, prefix: str = "gray_", default: object = "-") -> None:
        super().__init__(name)
        self.default = default
        self._fields = tuple((prefix + field, read) for field, read in _LOG_FIELDS)

    def filter(self, record: logging.LogRecord) -> bool:
        context = get_current()
        default = self.default
        attributes = record.__dict__
        for attribute, read in self._fields:
            if attribute in attributes:
                continue
            value = read(context) if context is not None else None
            attributes[attribute] = default if value is None else value
        return True


# -- threads ------------------------------------------------------------------


class ContextExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose tasks see the gray context of whoever submitted them.

    Each task runs in a copy of the submitter's :mod:`contextvars` context,
    taken when it is submitted (``map`` included); the worker thread's own
    context is never changed, so the next task -- or anything else that
    runs on that thread -- sees nothing of it.

    >>> from graywsgi import get_current
    >>> with ContextExecutor(max_workers=2) as pool:
    ...     pool.submit(get_current).result() is None
    True
    """

    def submit(self, fn: t.Callable[..., T], /, *args: t.Any, **kwargs: t.Any) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the caller's context."""
        return super().submit(carry_context(fn), *args, **kwargs)

