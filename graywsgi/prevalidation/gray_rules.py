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
(:class:`~graywsgi.prevalidation.openapi_model.OpenAPIError`).

This module holds :func:`compile_gray_rules` and the published schema
(:func:`gray_rules_schema`). What rules compile to and how they check a
request is :mod:`graywsgi.prevalidation.gray_rule_checks`; which requests a
rule applies to (``applies_to``) is
:mod:`graywsgi.prevalidation.gray_rule_selector`. Every name of ``__all__``
is importable from here.
"""

from __future__ import annotations

import functools
import json
import re
import typing as t
from importlib import resources

import jsonschema
from jsonschema.exceptions import ValidationError

from graywsgi.prevalidation.gray_rule_checks import BODY_KINDS as BODY_KINDS
from graywsgi.prevalidation.gray_rule_checks import _fast_check as _fast_check
from graywsgi.prevalidation.gray_rule_checks import cap as cap
from graywsgi.prevalidation.gray_rule_checks import (
    FORMAT_CHECKER,
    MAX_TEXT,
    FieldError,
    GrayRule,
    OperationRules,
    body_kind,
)
from graywsgi.prevalidation.gray_rule_selector import Selector, compile_selector, is_gray
from graywsgi.prevalidation.openapi import Node, OpenAPIDocument, OpenAPIError, Operation, Problem

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


_TYPE_ORDER = ("integer", "number", "boolean", "array", "string")


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
