"""
Gray rule checks
================

What the ``x-gray-rules`` of an operation compile to, and how they check
each request: :class:`GrayRule` (one rule: where its value comes from, how
its text is read, its JSON Schema validator, with a fast path for flat
constraints), :class:`OperationRules` (the rules of one operation),
:class:`FieldError` (one failed field of a 400 answer), the
:data:`FORMAT_CHECKER` the constraints run with, and :func:`body_kind`.
Compiling them from the document is
:func:`~graywsgi.prevalidation.gray_rules.compile_gray_rules` in
:mod:`graywsgi.prevalidation.gray_rules`, which re-exports these names; which
requests a rule applies to is :mod:`graywsgi.prevalidation.gray_rule_selector`.
"""

from __future__ import annotations

import json
import re
import typing as t

import jsonschema
from jsonschema.exceptions import ValidationError, relevance

from graywsgi.prevalidation.gray_rule_selector import Selector
from graywsgi.prevalidation.openapi_model import Node, Operation

__all__ = [
    "GrayRule",
    "OperationRules",
    "FieldError",
    "body_kind",
    "cap",
    "FORMAT_CHECKER",
    "MAX_TEXT",
    "BODY_KINDS",
]

#: Longest ``expected``/``received``/``message`` text in a 400 answer.
MAX_TEXT = 120

#: Media type kinds whose bodies graywsgi can read fields from.
BODY_KINDS = ("json", "form", "multipart")


def body_kind(media_type: str) -> str | None:
    """``json``, ``form``, ``multipart`` or ``None`` for a (lower-case) media type."""
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return "json"
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    if media_type == "multipart/form-data":
        return "multipart"
    return None


def _build_format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = dict(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)

    def int_range(bits: int) -> t.Callable[[object], bool]:
        high: int = (1 << (bits - 1)) - 1
        low: int = -high - 1

        def check(value: object) -> bool:
            if isinstance(value, bool) or not isinstance(value, int):
                return True  # format applies to integers only
            return low <= value <= high

        return check

    checker.checks("int32")(int_range(32))
    checker.checks("int64")(int_range(64))
    return checker


#: The format checker rule constraints run with: jsonschema's draft 2020-12
#: formats that the installed packages can check, plus OpenAPI's ``int32``
#: and ``int64``. A rule naming any other format is refused at start-up
#: (jsonschema would silently let every value pass).
FORMAT_CHECKER = _build_format_checker()


# --- compiled rules ----------------------------------------------------------------


class FieldError(t.NamedTuple):
    """One failed field of a request, as listed in the 400 answer."""

    where: str  #: ``query.limit``, ``header.X-Client``, ``body#/items/0/qty``
    expected: str  #: the constraint that failed, e.g. ``maximum: 50``
    received: str | None  #: what arrived (capped), ``None`` when absent
    message: str  #: a sentence

    def as_json(self) -> dict[str, object]:
        return {"where": self.where, "expected": self.expected, "received": self.received, "message": self.message}


def cap(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Uncoercible(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _coerce_scalar(text: str, kind: str | None) -> object:
    if kind == "integer":
        if _INTEGER.fullmatch(text) and len(text) <= 64:
            return int(text)
        raise _Uncoercible("integer")
    if kind == "number":
        if _NUMBER.fullmatch(text) and len(text) <= 64:
            number = float(text)
            return int(number) if number.is_integer() and _INTEGER.fullmatch(text) else number
        raise _Uncoercible("number")
    if kind == "boolean":
        if text == "true":
            return True
        if text == "false":
            return False
        raise _Uncoercible("boolean (true or false)")
    return text


_FAST_TYPES: t.Mapping[str, t.Callable[[t.Any], bool]] = {
    "string": lambda v: v.__class__ is str,
    "integer": lambda v: v.__class__ is int,
    "number": lambda v: v.__class__ is int or v.__class__ is float,
    "boolean": lambda v: v.__class__ is bool,
    "null": lambda v: v is None,
    "array": lambda v: v.__class__ is list,
    "object": lambda v: v.__class__ is dict,
}
_FAST_KEYWORDS = frozenset({
    "type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "enum", "const", "format", "$comment", "title", "description", "examples",
})


def _fast_check(schema: t.Mapping[str, t.Any]) -> t.Callable[[t.Any], bool] | None:
    """A plain-Python check for a flat constraint, or ``None`` when there is none.

    It is one-sided: ``True`` means jsonschema would find the value valid;
    ``False`` means "ask jsonschema", which then decides and explains.
    Values of types it does not handle exactly (bools against numbers,
    floats against ``integer``, non-strings against ``enum``) say ``False``.
    """
    if not set(schema) <= _FAST_KEYWORDS:
        return None
    checks: list[t.Callable[[t.Any], bool]] = []
    declared = schema.get("type")
    if declared is not None:
        names = [declared] if isinstance(declared, str) else list(declared)
        tests = tuple(_FAST_TYPES[name] for name in names)
        if len(tests) == 1:
            checks.append(tests[0])
        else:
            checks.append(lambda v: any(test(v) for test in tests))
    bounds = [(key, schema[key]) for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if key in schema]
    if bounds:
        def in_bounds(v: t.Any) -> bool:
            if v.__class__ is bool:
                return False
            if v.__class__ is not int and v.__class__ is not float:
                return True
            for key, bound in bounds:
                if (key == "minimum" and v < bound) or (key == "maximum" and v > bound) or (
                    key == "exclusiveMinimum" and v <= bound) or (key == "exclusiveMaximum" and v >= bound):
                    return False
            return True
        checks.append(in_bounds)
    if "minLength" in schema or "maxLength" in schema:
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength")
        checks.append(lambda v: v.__class__ is not str or (
            len(v) >= shortest and (longest is None or len(v) <= longest)))
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda v: v.__class__ is not str or search(v) is not None)
    for key in ("enum", "const"):
        if key in schema:
            allowed = schema[key] if key == "enum" else [schema[key]]
            texts = frozenset(item for item in allowed if isinstance(item, str))
            checks.append(lambda v, texts=texts: v.__class__ is str and v in texts)  # type: ignore[misc]
    if "format" in schema:
        conforms, fmt = FORMAT_CHECKER.conforms, schema["format"]
        checks.append(lambda v: conforms(v, fmt))
    if len(checks) == 1:
        return checks[0]
    chain = tuple(checks)

    def all_pass(v: t.Any) -> bool:
        for check in chain:
            if not check(v):
                return False
        return True

    return all_pass


class GrayRule:
    """One compiled rule: where its value comes from, how it is read, its validator.

    Immutable once built; shared by every request (jsonschema validators
    keep no per-call state).
    """

    __slots__ = (
        "field", "source", "name", "pointer", "schema", "validator", "required",
        "selector", "text_type", "item_type", "split_commas", "node", "_fast",
    )

    def __init__(
        self,
        *,
        field: str,
        source: str,
        name: str,
        pointer: tuple[str, ...],
        schema: dict[str, t.Any],
        required: bool,
        selector: Selector,
        text_type: str | None,
        item_type: str | None,
        split_commas: bool,
        node: Node,
    ) -> None:
        self.field = field
        self.source = source  #: query, header, path or body
        self.name = name  #: the parameter name; for a header, its environ key
        self.pointer = pointer  #: body: the JSON pointer's tokens
        self.schema = schema
        self.validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(
            schema, format_checker=FORMAT_CHECKER
        )
        self._fast = _fast_check(schema)
        self.required = required
        self.selector = selector
        #: how a text value (parameter, form field) is read before validation
        self.text_type = text_type
        self.item_type = item_type
        self.split_commas = split_commas
        self.node = node

    def __repr__(self) -> str:
        return f"GrayRule({self.field!r}, {self.schema!r}, applies_to={self.selector.describe()!r})"

    # -- checking values -------------------------------------------------------------

    def check_text(self, raw: t.Sequence[bytes] | None, out: list[FieldError]) -> None:
        """Check a text field: all values sent for it, or ``None`` when absent."""
        if not raw:
            if self.required:
                out.append(FieldError(self.field, "present", None, "a required field is absent"))
            return
        first = raw[0]
        try:
            if self.text_type == "array":
                texts = [_text(item) for item in raw]
                if self.split_commas:
                    texts = texts[0].split(",")
                shown = json.dumps(texts, ensure_ascii=False)
                value: t.Any = [_coerce_scalar(text, self.item_type) for text in texts]
            else:
                shown = _text(first)
                value = _coerce_scalar(shown, self.text_type)
        except _Uncoercible as exc:
            received = first.decode("utf-8", "replace")
            out.append(FieldError(self.field, f"type: {exc.expected}", cap(received), f"{cap(received)!r} is not a valid {exc.expected}"))
            return
        fast = self._fast
        if (fast is not None and fast(value)) or self.validator.is_valid(value):
            return
        self._collect(value, self.field, shown, out)

    def check_json(self, found: bool, value: t.Any, out: list[FieldError]) -> None:
        """Check a body field read from JSON (``found`` false when absent)."""
        if not found:
            if self.required:
                out.append(FieldError(self.field, "present", None, "a required field is absent"))
            return
        fast = self._fast
        if (fast is not None and fast(value)) or self.validator.is_valid(value):
            return
        self._collect(value, self.field, None, out)

    def _collect(self, value: t.Any, where: str, shown: str | None, out: list[FieldError]) -> None:
        best: dict[tuple[t.Any, ...], ValidationError] = {}
        for error in self.validator.iter_errors(value):
            key = tuple(error.absolute_path)
            current = best.get(key)
            if current is None or _rank(error) > _rank(current):
                best[key] = error
        for path, error in sorted(best.items(), key=lambda item: [str(p) for p in item[0]]):
            out.append(
                FieldError(
                    self._where(path),
                    cap(f"{error.validator}: {_compact(error.validator_value)}"),
                    cap(shown) if shown is not None and not path else _shown(error.instance),
                    cap(error.message),
                )
            )

    def _where(self, path: tuple[t.Any, ...]) -> str:
        if not path:
            return self.field
        if self.source == "body":
            tokens = [*self.pointer, *(str(p) for p in path)]
            return "body#" + "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens)
        return self.field + "".join(f"[{p}]" for p in path)


_rank = t.cast("t.Callable[[ValidationError], tuple[t.Any, ...]]", relevance)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Uncoercible("UTF-8 text") from None


def _compact(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):  # pragma: no cover - schemas are JSON
        return repr(value)


def _shown(value: object) -> str:
    if isinstance(value, str):
        return cap(value)
    return cap(_compact(value))


class OperationRules:
    """The compiled gray rules of one operation."""

    __slots__ = ("operation", "label", "rules", "body_kinds", "body_media_types")

    def __init__(self, operation: Operation, rules: t.Sequence[GrayRule]) -> None:
        self.operation = operation
        self.label = operation.label
        self.rules = tuple(rules)
        kinds = {body_kind(media): media for media in operation.body}
        #: what request bodies can be read: json, form, multipart
        self.body_kinds = frozenset(kind for kind in kinds if kind is not None)
        #: the declared media types graywsgi reads, for messages
        self.body_media_types = tuple(media for media in operation.body if body_kind(media) is not None)
