"""Records checked against their stream's SCHEMA (``validate_records``), cheaply.

The SDK's JSON schema validator walks every property of every record through its keyword
machinery: on the canonical phone record that cost more than all the rest the target does
with a record. Most SCHEMAs a tap sends are flat lists of typed properties, so those
shapes (``type``, ``enum`` of strings, nested ``properties`` / ``required`` /
``additionalProperties``) are compiled here into plain type checks. A record they pass is
valid; one they fail, or any SCHEMA with other keywords, goes to the SDK's validator, which
has the last word and words the reason.
"""

from __future__ import annotations

import datetime
import numbers
import typing as t

import jsonschema
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR

__all__ = ["SchemaCheck"]

Predicate = t.Callable[[t.Any], bool]

#: Keywords that never fail a value (``format`` is not checked, as the SDK's default).
_ANNOTATIONS = frozenset(("description", "title", "default", "examples", "format", "$comment", "$schema",
                          "readOnly", "writeOnly", "deprecated"))
_SHOWN = 300


def _any(_: t.Any) -> bool:
    return True


_ANY: Predicate = _any


#: The JSON types a value's class alone decides. A parquet BATCH file's timestamps come
#: parsed: they count as the text they were.
_CLASSES: dict[str, tuple[type, ...]] = {
    "string": (str, datetime.date, datetime.time),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


def _instance_of(classes: tuple[type, ...]) -> Predicate:
    return lambda v: isinstance(v, classes)


def _is_integer(value: t.Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Predicate] = {
    **{name: _instance_of(classes) for name, classes in _CLASSES.items()},
    "integer": _is_integer,
    "number": lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool | complex),
}

#: The SDK's validator, reading parsed date-times as strings (``_CLASSES``); formats
#: unchecked, as the SDK's default.
_Validator = jsonschema.validators.extend(
    DEFAULT_JSONSCHEMA_VALIDATOR,
    type_checker=DEFAULT_JSONSCHEMA_VALIDATOR.TYPE_CHECKER.redefine(
        "string", lambda _checker, value: _TYPES["string"](value)))


class SchemaCheck:
    """One stream's SCHEMA, ready to check records."""

    def __init__(self, schema: dict[str, t.Any]) -> None:
        """Compile ``schema``.

        Raises:
            jsonschema.SchemaError: The SCHEMA is not a valid JSON schema.
        """
        _Validator.check_schema(schema)
        self.validator = _Validator(schema)
        self.fast = _compile(schema)

    def error(self, record: dict[str, t.Any]) -> str | None:
        """Why ``record`` does not match the SCHEMA, in one line; None when it does."""
        if self.fast is not None and self.fast(record):
            return None
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(record))
        if error is None:
            return None
        where = ".".join(str(p) for p in error.absolute_path) or "record"
        return f"{where}: {' '.join(error.message.split())}"[:_SHOWN]


def _compile(schema: t.Any) -> Predicate | None:
    """A predicate that passes only values the schema accepts, for the shapes above; None
    for a schema with any other keyword (``$ref``, ``anyOf``, ``pattern``...)."""
    if schema is True:
        return _ANY
    if not isinstance(schema, dict) or not set(schema) - _ANNOTATIONS <= {
            "type", "enum", "properties", "required", "additionalProperties"}:
        return None
    checks: list[Predicate] = []
    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not isinstance(names, list) or not all(n in _TYPES for n in names):
            return None
        checks.append(_type_check(names))
    if "enum" in schema:
        allowed = schema["enum"]
        if not isinstance(allowed, list) or not all(isinstance(a, str) or a is None
                                                    for a in allowed):
            return None
        texts = frozenset(a for a in allowed if a is not None)
        checks.append(lambda v: (v is None and None in allowed) or (isinstance(v, str)
                                                                     and v in texts))
    shape = _compile_object(schema)
    if shape is None:
        return None
    if shape is not _ANY:
        checks.append(shape)
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # a type and one other keyword, the common case, without a generator
        first, second = checks
        return lambda v: first(v) and second(v)
    return lambda v: all(check(v) for check in checks)


def _type_check(names: list[str]) -> Predicate:
    """A predicate for ``type``: the value is of one of these JSON types."""
    if all(name in _CLASSES for name in names):  # one isinstance for them all
        return _instance_of(tuple(cls for name in names for cls in _CLASSES[name]))
    types = tuple(_TYPES[name] for name in names)
    return lambda v: any(is_type(v) for is_type in types)


def _compile_object(schema: dict[str, t.Any]) -> Predicate | None:
    """The object keywords of ``schema`` (they apply to objects only)."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        return None
    if not properties and not required and extra is True:
        return _ANY
    compiled = {name: _compile(sub) for name, sub in properties.items()}
    other = (lambda _: False) if extra is False else _compile(extra)
    if other is None or any(check is None for check in compiled.values()):
        return None
    checks = t.cast("dict[str, Predicate]", compiled)

    def check(value: t.Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for key, item in value.items():
            if not checks.get(key, other)(item):
                return False
        return True

    return check
