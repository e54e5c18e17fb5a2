"""
Pre-validation's request body
=============================

How :class:`~graywsgi.prevalidation.layer.PreValidation` reads the request
body when a rule is about it, hands it back to the application, and parses
it (JSON, form, multipart) into what the body rules of
:mod:`graywsgi.prevalidation.gray_rules` check; and the refusal (a ``400``
or ``413`` answer) that the layer and the reading give.

The body
--------

When the body is read, it is read once, into one ``bytes`` object, bounded
by ``max_body`` (1 MiB by default): with ``Content-Length`` exactly that
many bytes (a larger declared length is answered ``413`` before reading);
without one, when the server marks the input terminated (chunked requests;
``wsgi.input_terminated``), up to the end of the stream -- ``413`` as soon
as it passes the limit. The application then receives the same bytes in a
fresh :class:`io.BytesIO` as ``wsgi.input`` (sharing that one buffer) and
``CONTENT_LENGTH`` set to their length -- for JSON, form and multipart
bodies, valid or not.

JSON bodies (``application/json``, ``*/*+json``) must parse: malformed
JSON, a non-UTF text or ``NaN`` is a ``400`` naming the parse error.
Form bodies (``application/x-www-form-urlencoded``) and the text fields of
``multipart/form-data`` bodies are read as text fields, like query
parameters. A body of a media type the operation does not declare (or
none at all) is a ``400``; an empty body means every body field is absent.
"""

from __future__ import annotations

import io
import typing as t

from graywsgi.httputil.query import decode_component
from graywsgi.prevalidation.gray_rules import FieldError, GrayRule, cap

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__: list[str] = []

_READ_CHUNK = 64 * 1024


class _Refusal(t.NamedTuple):
    status: int
    detail: str
    errors: list[FieldError]


class _Absent:
    """The body was empty: every body field is absent."""


_ABSENT = _Absent()
_MISSING = object()


class _Form:
    """A form body: field name -> every value sent for it."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, list[bytes | None]]) -> None:
        self.fields = fields


def _check_body_rule(rule: GrayRule, body: object, errors: list[FieldError]) -> None:
    pointer = rule.pointer
    if body is _ABSENT:
        rule.check_json(False, None, errors)
        return
    if isinstance(body, _Form):
        if not pointer:
            whole = {name: (values[0] or b"").decode("utf-8", "replace") for name, values in body.fields.items() if values}
            rule.check_json(True, whole, errors)
            return
        values = body.fields.get(pointer[0]) if len(pointer) == 1 else None
        if values is not None and None in values:
            errors.append(FieldError(rule.field, "percent-encoded text", None, "the value has a malformed %-escape"))
            return
        rule.check_text(t.cast("list[bytes] | None", values), errors)
        return
    value = body
    for token in pointer:
        if isinstance(value, dict):
            value = value.get(token, _MISSING)
        elif isinstance(value, list) and token.isdigit() and (token == "0" or not token.startswith("0")):
            index = int(token)
            value = value[index] if index < len(value) else _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            rule.check_json(False, None, errors)
            return
    rule.check_json(True, value, errors)


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes | _Refusal:
    """Read the body once, bounded; put the same bytes back for the application."""
    raw_length = str(environ.get("CONTENT_LENGTH") or "").strip(" \t")
    length: int | None = None
    if raw_length:
        if not (raw_length.isascii() and raw_length.isdigit()):
            return _Refusal(400, "The Content-Length header is not a number.", [])
        length = int(raw_length)
        if length > limit:
            return _too_large(limit)
    terminated = bool(environ.get("wsgi.input_terminated"))
    stream = environ.get("wsgi.input")
    if stream is None:
        data = b""
    elif terminated and (length is None or environ.get("HTTP_TRANSFER_ENCODING")):
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return _too_large(limit)
        except Exception as exc:
            return _unreadable(exc)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
    elif length is None or length == 0:
        data = b""
    else:
        try:
            data = stream.read(length)
            if len(data) < length:
                parts = [data]
                got = len(data)
                while got < length:
                    more = stream.read(length - got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
        except Exception as exc:
            return _unreadable(exc)
        if len(data) < length:
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            return _Refusal(400, f"The request body ended after {len(data)} of {length} bytes.", [])
    # io.BytesIO shares the bytes object until written to: nothing is copied.
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    return data


def _too_large(limit: int) -> _Refusal:
    return _Refusal(413, f"The request body is larger than {limit} bytes, the most that is checked.", [])


def _unreadable(exc: Exception) -> _Refusal:
    return _Refusal(400, f"The request body could not be read: {cap(str(exc) or type(exc).__name__)}", [])


def _parse_urlencoded(data: bytes) -> dict[str, list[bytes | None]]:
    return _parse_pairs(data, {})


def _parse_pairs(raw: bytes, out: dict[str, list[bytes | None]]) -> dict[str, list[bytes | None]]:
    for part in raw.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        name = decode_component(key)
        if not name:
            continue
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.setdefault(text, []).append(decode_component(value))
    return out


class _Discard(io.RawIOBase):
    """Where multipart file contents go: nowhere (they are never buffered twice)."""

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: t.Any) -> int:
        return len(data)

    def readinto(self, buffer: t.Any) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0


def _parse_multipart(data: bytes, content_type: str, limit: int) -> object:
    from werkzeug.formparser import FormDataParser
    from werkzeug.http import parse_options_header

    mimetype, options = parse_options_header(content_type)

    def stream_factory(
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> t.IO[bytes]:
        return t.cast("t.IO[bytes]", _Discard())

    parser = FormDataParser(stream_factory=stream_factory, max_form_memory_size=limit, silent=False)
    try:
        _stream, form, _files = parser.parse(io.BytesIO(data), mimetype, len(data), options)
    except Exception as exc:
        reason = getattr(exc, "description", None) or str(exc) or type(exc).__name__
        return _Refusal(
            400,
            f"The request body is not valid multipart/form-data: {cap(str(reason))}",
            [FieldError("body", "multipart/form-data", None, cap(f"invalid multipart body: {reason}"))],
        )
    fields: dict[str, list[bytes | None]] = {}
    for name, value in form.items(multi=True):
        fields.setdefault(name, []).append(value.encode("utf-8", "surrogateescape"))
    return _Form(fields)
