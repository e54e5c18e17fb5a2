"""
Gray rules (``x-gray-rules``)
=============================

The rules :class:`~graywsgi.prevalidation.layer.PreValidation` checks, written in
the service's OpenAPI document next to each operation, and what they
compile to. The guide with a worked example is ``docs/prevalidation.md``;
the published JSON Schema of ``x-gray-rules`` is
``graywsgi/schema/x-gray-rules.schema.json`` (:func:`gray_rules_schema`).

.. code-block:: yaml

    paths:
      /orders:
        get:
          parameters: [...]
          x-gray-rules:
            applies_to: gray            # optional default for the rules below
            rules:
              - field: query.limit      # query.NAME, header.NAME, path.NAME,
                schema:                 # body, body#/json/pointer
                  type: integer
                  maximum: 50
              - field: header.X-Client
                schema: {enum: [ios, android, web]}
                required: true          # absent fails (default: absent passes)
                applies_to:
                  versions: ["^2"]      # X-Version: exact or a node-semver range
                  routes: [canary]      # the route a split chose
                  colors: [blue]        # X-Traffic-Color

Compiling checks what a schema cannot: the field must be one the operation
defines (a parameter of that name and place, or a property its request body
schema declares along the pointer), each constraint must be a valid JSON
Schema (draft 2020-12) with patterns that compile and formats that can
really be checked, each version a SemVer version or range. Every problem
names the document, the operation and the JSON pointer
(:class:`~graywsgi.prevalidation.openapi.OpenAPIError`).
"""

from __future__ import annotations

import functools
import json
import re
import typing as t
from importlib import resources

import jsonschema
from jsonschema.exceptions import ValidationError, relevance

from graywsgi.core.context import GrayContext
from graywsgi.prevalidation.openapi import Node, OpenAPIDocument, OpenAPIError, Operation, Problem
from graywsgi.core.version import Version, VersionRange

__all__ = [
    "GrayRule",
    "OperationRules",
    "Selector",
    "FieldError",
    "compile_gray_rules",
    "compile_selector",
    "gray_rules_schema",
    "is_gray",
    "body_kind",
    "FORMAT_CHECKER",
    "MAX_TEXT",
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


@functools.cache
def gray_rules_schema() -> dict[str, t.Any]:
    """The published JSON Schema of ``x-gray-rules``."""
    text = resources.files("graywsgi").joinpath("schema/x-gray-rules.schema.json").read_text("utf-8")
    schema: dict[str, t.Any] = json.loads(text)
    return schema


@functools.cache
def _rules_validator() -> jsonschema.protocols.Validator:
    schema = gray_rules_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


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


# --- selectors -------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _parse_version(text: str) -> Version | None:
    try:
        return Version.parse(text)
    except ValueError:
        return None


class Selector:
    """Which requests a rule applies to. Immutable.

    - ``gray`` -- every gray request (see :func:`is_gray`);
    - ``all`` -- every request, gray or not;
    - a match -- gray requests whose ``X-Version`` equals a listed version
      or lies in a listed node-semver range, whose route is listed, or
      whose ``X-Traffic-Color`` is listed (any one is enough).
    """

    __slots__ = ("kind", "versions", "_exact", "_ranges", "routes", "colors")

    def __init__(
        self,
        kind: str,
        versions: t.Sequence[str] = (),
        routes: t.Iterable[str] = (),
        colors: t.Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self.versions = tuple(versions)
        self._exact = frozenset(self.versions)
        self._ranges = tuple(VersionRange(text) for text in self.versions)
        self.routes = frozenset(routes)
        self.colors = frozenset(color.lower() for color in colors)

    def applies(self, context: GrayContext | None, gray: bool) -> bool:
        """Whether a request with ``context`` (gray or not) is selected."""
        kind = self.kind
        if kind == "all":
            return True
        if not gray or context is None:
            return False
        if kind == "gray":
            return True
        if context.route is not None and context.route in self.routes:
            return True
        color = context.traffic_color
        if color is not None and color.lower() in self.colors:
            return True
        version = context.version
        if version is not None and self._ranges:
            if version in self._exact:
                return True
            parsed = _parse_version(version)
            if parsed is not None:
                for wanted in self._ranges:
                    if parsed in wanted:
                        return True
        return False

    def describe(self) -> str:
        """A short text for tables: ``gray``, ``all``, ``versions ^2; colors blue``."""
        if self.kind != "match":
            return self.kind
        parts = []
        if self.versions:
            parts.append("versions " + ", ".join(self.versions))
        if self.routes:
            parts.append("routes " + ", ".join(sorted(self.routes)))
        if self.colors:
            parts.append("colors " + ", ".join(sorted(self.colors)))
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"Selector({self.describe()!r})"


def compile_selector(spec: object) -> Selector:
    """Compile an ``applies_to`` value (``"gray"``, ``"all"`` or a mapping).

    :raises ValueError: describing what is wrong.
    """
    if spec in ("gray", "all"):
        return Selector(spec)
    if not isinstance(spec, t.Mapping):
        raise ValueError(f"applies_to must be 'gray', 'all' or a mapping, got {spec!r}")
    unknown = set(spec) - {"versions", "routes", "colors"}
    if unknown:
        raise ValueError(f"applies_to has unknown keys {sorted(unknown)} (use versions, routes, colors)")
    if not spec:
        raise ValueError("applies_to must name at least one of versions, routes, colors")
    lists: dict[str, list[str]] = {}
    for key in ("versions", "routes", "colors"):
        value = spec.get(key, [])
        if isinstance(value, str) or not isinstance(value, t.Sequence) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise ValueError(f"applies_to.{key} must be a list of non-empty strings, got {value!r}")
        lists[key] = list(value)
    for text in lists["versions"]:
        try:
            VersionRange(text)
        except ValueError as exc:
            raise ValueError(f"applies_to.versions: {text!r} is not a version or range: {exc}") from None
    return Selector("match", lists["versions"], lists["routes"], lists["colors"])


def is_gray(context: GrayContext | None, stable: t.Container[str]) -> bool:
    """Whether a request is gray traffic.

    Gray means a context that is not a fallback and that carries a gray
    marker: ``X-Version``, ``X-Canary-ID``, an ``X-Traffic-Color`` not in
    ``stable``, or a route (chosen by a split that ran before) not in
    ``stable``. A gray id alone is not a marker: every user has one.
    """
    if context is None or context.is_fallback:
        return False
    if context.version is not None or context.canary_id is not None:
        return True
    color = context.traffic_color
    if color is not None and color.lower() not in stable:
        return True
    route = context.route
    return route is not None and route not in stable


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
_TYPE_ORDER = ("integer", "number", "boolean", "array", "string")


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


def _declared_type(schema: t.Mapping[str, t.Any] | None) -> str | None:
    """The type values should be read as: the first of a schema's types we can coerce to."""
    if not isinstance(schema, t.Mapping):
        return None
    declared = schema.get("type")
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, list):
        return None
    for kind in _TYPE_ORDER:
        if kind in declared:
            return kind
    return None


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


# --- compiling -------------------------------------------------------------------


def compile_gray_rules(
    document: OpenAPIDocument, default_applies_to: Selector | None = None
) -> list[OperationRules]:
    """Check and compile the ``x-gray-rules`` of every operation.

    :param document: the loaded document.
    :param default_applies_to: for rules (and operations) that do not say;
        ``gray`` if omitted.
    :return: one entry per operation, in document order (operations without
        rules have an empty ``rules``).
    :raises OpenAPIError: naming the document, operation and JSON pointer of
        every problem.
    """
    default = default_applies_to if default_applies_to is not None else Selector("gray")
    problems: list[Problem] = []
    compiled = []
    for operation in document.operations:
        rules = _compile_operation(document, operation, default, problems)
        compiled.append(OperationRules(operation, rules))
    if problems:
        raise OpenAPIError(problems)
    return compiled


def _compile_operation(
    document: OpenAPIDocument, operation: Operation, default: Selector, problems: list[Problem]
) -> list[GrayRule]:
    node = operation.gray_rules
    if node is None:
        return []
    label = operation.label

    def problem(at: Node, reason: str) -> None:
        problems.append(document.node_problem(at, label, reason))

    errors = sorted(_rules_validator().iter_errors(node.value), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        for error in errors:
            at = Node(error.instance, node.file, (*node.location, *error.absolute_path))
            problem(at, f"x-gray-rules: {cap(_schema_message(error), 300)}")
        return []
    value = node.value
    selector = default
    if "applies_to" in value:
        selector_node = t.cast(Node, node.child("applies_to"))
        try:
            selector = compile_selector(value["applies_to"])
        except ValueError as exc:
            problem(selector_node, str(exc))
    rules_node = t.cast(Node, node.child("rules"))
    out = []
    for index in range(len(value["rules"])):
        rule_node = t.cast(Node, rules_node.child(index))
        rule = _compile_rule(document, operation, rule_node, selector, problem)
        if rule is not None:
            out.append(rule)
    return out


def _schema_message(error: ValidationError) -> str:
    if error.validator == "oneOf" and error.context:
        # A branch that failed on its type or enum is the wrong branch; the
        # deepest failure of a branch of the right type says what is wrong.
        telling = [e for e in error.context if e.validator not in ("type", "enum")]
        if telling:
            return max(telling, key=lambda e: len(e.absolute_path)).message
        return error.context[0].message
    return error.message


def _compile_rule(
    document: OpenAPIDocument,
    operation: Operation,
    node: Node,
    default: Selector,
    problem: t.Callable[[Node, str], None],
) -> GrayRule | None:
    spec = node.value
    field_node = t.cast(Node, node.child("field"))
    schema_node = t.cast(Node, node.child("schema"))
    field: str = spec["field"]
    selector = default
    if "applies_to" in spec:
        try:
            selector = compile_selector(spec["applies_to"])
        except ValueError as exc:
            problem(t.cast(Node, node.child("applies_to")), str(exc))
            return None
    schema: dict[str, t.Any] = spec["schema"]
    reason = _constraint_problem(schema)
    if reason is not None:
        problem(schema_node, reason)
        return None
    text_type = _declared_type(schema)
    item_type = _declared_type(schema.get("items")) if text_type == "array" else None
    split_commas = False
    if field.startswith("body"):
        source = "body"
        name = ""
        pointer = _pointer_tokens(field)
        found_reason = _body_field_problem(document, operation, pointer)
        if found_reason is not None:
            problem(field_node, found_reason)
            return None
        if text_type is None or (text_type == "array" and item_type is None):
            form_schema = _form_property_schema(document, operation, pointer)
            if text_type is None:
                text_type = _declared_type(form_schema)
            if text_type == "array" and item_type is None and form_schema is not None:
                items = form_schema.get("items")
                item_type = _declared_type(items if isinstance(items, dict) else None)
    else:
        source, _, name = field.partition(".")
        key = name.lower() if source == "header" else name
        parameter = operation.parameters.get((source, key))
        if parameter is None:
            defined = sorted(p.name for (where, _), p in operation.parameters.items() if where == source)
            listing = ", ".join(defined) if defined else "none"
            problem(field_node, f"{source} parameter {name!r} is not defined by the operation (defined: {listing})")
            return None
        declared = parameter.schema.value if parameter.schema is not None else None
        if text_type is None:
            text_type = _declared_type(declared)
        if text_type == "array" and item_type is None and parameter.schema is not None:
            items = document.member(parameter.schema, "items")
            item_type = _declared_type(items.value if items is not None else None)
        split_commas = source in ("header", "path") or not parameter.explode
        if source == "header":
            upper = name.upper().replace("-", "_")
            name = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        pointer = ()
    return GrayRule(
        field=field,
        source=source,
        name=name,
        pointer=pointer,
        schema=schema,
        required=bool(spec.get("required", False)),
        selector=selector,
        text_type=text_type,
        item_type=item_type,
        split_commas=split_commas,
        node=node,
    )


def _pointer_tokens(field: str) -> tuple[str, ...]:
    fragment = field[len("body#"):] if field.startswith("body#") else ""
    if not fragment:
        return ()
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in fragment[1:].split("/"))


def _constraint_problem(schema: dict[str, t.Any]) -> str | None:
    """What is wrong with a rule's JSON Schema fragment, beyond the published schema."""
    stack: list[t.Any] = [schema]
    while stack:
        fragment = stack.pop()
        if isinstance(fragment, list):
            stack.extend(fragment)
            continue
        if not isinstance(fragment, dict):
            continue
        pattern = fragment.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"pattern {pattern!r} does not compile: {exc}"
        for key in fragment.get("patternProperties", {}) or {}:
            try:
                re.compile(key)
            except re.error as exc:
                return f"patternProperties key {key!r} does not compile: {exc}"
        fmt = fragment.get("format")
        if isinstance(fmt, str) and fmt not in FORMAT_CHECKER.checkers:
            checkable = ", ".join(sorted(FORMAT_CHECKER.checkers))
            return f"format {fmt!r} cannot be checked here (checkable: {checkable})"
        for key, child in fragment.items():
            if key in ("items", "contains", "not", "additionalProperties"):
                stack.append(child)
            elif key in ("prefixItems", "allOf", "anyOf", "oneOf"):
                stack.extend(child if isinstance(child, list) else [])
            elif key in ("properties", "patternProperties") and isinstance(child, dict):
                stack.extend(child.values())
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        location = "/".join(str(p) for p in exc.absolute_path)
        return f"not a valid JSON Schema{' at ' + location if location else ''}: {cap(exc.message, 200)}"
    return None


def _body_field_problem(document: OpenAPIDocument, operation: Operation, pointer: tuple[str, ...]) -> str | None:
    body = operation.body
    if not body:
        return "the operation has no request body"
    readable = {media: schema for media, schema in body.items() if body_kind(media) is not None}
    if not readable:
        return f"the operation's request body has no JSON or form media type (it has: {', '.join(body)})"
    if not pointer:
        return None
    for media, schema in readable.items():
        if schema is None:
            continue
        if body_kind(media) != "json" and len(pointer) != 1:
            continue  # form fields are flat
        if _schema_defines(document, schema, pointer, 0):
            return None
    rendered = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in pointer)
    return f"the request body schema does not define {rendered} (media types: {', '.join(readable)})"


def _schema_defines(document: OpenAPIDocument, node: Node, pointer: tuple[str, ...], depth: int) -> bool:
    if depth > 64:
        return False
    node = document.resolve(node)
    if not pointer:
        return True
    value = node.value
    if not isinstance(value, dict):
        return False
    for combinator in ("allOf", "anyOf", "oneOf"):
        branches = node.child(combinator)
        if branches is not None and isinstance(branches.value, list):
            for index in range(len(branches.value)):
                branch = branches.child(index)
                if branch is not None and _schema_defines(document, branch, pointer, depth + 1):
                    return True
    head, rest = pointer[0], pointer[1:]
    properties = node.child("properties")
    if properties is not None:
        properties = document.resolve(properties)
        child = properties.child(head)
        if child is not None:
            return _schema_defines(document, child, rest, depth + 1)
    patterns = node.child("patternProperties")
    if patterns is not None and isinstance(patterns.value, dict):
        for regex in patterns.value:
            try:
                matched = re.search(regex, head) is not None
            except re.error:
                matched = False
            if matched:
                return _schema_defines(document, t.cast(Node, patterns.child(regex)), rest, depth + 1)
    additional = node.child("additionalProperties")
    if additional is not None and isinstance(document.resolve(additional).value, dict) and document.resolve(additional).value:
        return _schema_defines(document, additional, rest, depth + 1)
    if head.isdigit():
        prefix = node.child("prefixItems")
        if prefix is not None and isinstance(prefix.value, list) and int(head) < len(prefix.value):
            return _schema_defines(document, t.cast(Node, prefix.child(int(head))), rest, depth + 1)
        items = node.child("items")
        if items is not None and isinstance(document.resolve(items).value, dict):
            return _schema_defines(document, items, rest, depth + 1)
    return False


def _form_property_schema(
    document: OpenAPIDocument, operation: Operation, pointer: tuple[str, ...]
) -> dict[str, t.Any] | None:
    """The declared schema of a form field, to know how to read its text."""
    if len(pointer) != 1:
        return None
    for media, schema in operation.body.items():
        if body_kind(media) in ("form", "multipart") and schema is not None:
            resolved = document.resolve(schema)
            properties = resolved.child("properties")
            if properties is None:
                continue
            child = document.resolve(properties).child(pointer[0])
            if child is not None:
                value = document.resolve(child).value
                return value if isinstance(value, dict) else None
    return None
