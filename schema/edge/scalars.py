"""Input scalars that refuse bad values with a message a person understands.

graphql-core's and Strawberry's defaults let some inputs through that later crash a resolver
or the database (NUL characters, NaN, years PostgreSQL or date arithmetic cannot hold), or
refuse them with Python's own exception text. These replace them (`scalar_overrides`), so a
bad value is a coercion error of the request, with its path, before anything runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
from typing import Any

from graphql import (
    BooleanValueNode,
    FloatValueNode,
    GraphQLError,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
)
from strawberry.scalars import JSON
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.scalar import ScalarDefinition

# Dates and times the product can compute with: a forecast or period end a few centuries
# out overflows date arithmetic; nothing in sales needs them.
MIN_YEAR, MAX_YEAR = 1900, 2200
MAX_DECIMAL_DIGITS = 28
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")


DEFAULT_MAX_STRING = 20_000


def _text(value: object, type_name: str, max_length: int = DEFAULT_MAX_STRING) -> str:
    if not isinstance(value, str):
        raise GraphQLError(f"{type_name} must be a string, not {_json_kind(value)}")
    if "\x00" in value:
        raise GraphQLError(f"{type_name} must not contain NUL characters")
    if len(value) > max_length:
        raise GraphQLError(f"{type_name} is too long: at most {max_length} characters")
    return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _literal_text(node: ValueNode, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("expected a string literal")
    return node.value


def parse_decimal(value: object) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise GraphQLError(f"Decimal must be a string like \"1234.50\", not {_json_kind(value)}")
    text = value if isinstance(value, str) else repr(value)
    if "\x00" in text or not _DECIMAL.match(text.strip()):
        raise GraphQLError("Decimal must be a finite number like \"1234.50\"")
    number = decimal.Decimal(text.strip())
    digits = number.as_tuple()
    if len(digits.digits) > MAX_DECIMAL_DIGITS or not -12 <= int(digits.exponent) <= 18:
        raise GraphQLError(f"Decimal has too many digits (at most {MAX_DECIMAL_DIGITS})")
    return number


def _decimal_literal(node: ValueNode, _variables: Any = None) -> decimal.Decimal:
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        return parse_decimal(node.value)
    raise GraphQLError("Decimal must be a string like \"1234.50\"")


def _year_ok(year: int, type_name: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise GraphQLError(f"{type_name} must be between the years {MIN_YEAR} and {MAX_YEAR}")


def parse_date(value: object) -> dt.date:
    text = _text(value, "Date")
    try:
        parsed = dt.date.fromisoformat(text)
    except ValueError:
        raise GraphQLError("Date must be a calendar date like \"2026-03-31\"") from None
    if len(text) != 10:
        raise GraphQLError("Date must be a calendar date like \"2026-03-31\"")
    _year_ok(parsed.year, "Date")
    return parsed


def parse_datetime(value: object) -> dt.datetime:
    text = _text(value, "DateTime")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise GraphQLError("DateTime must be an ISO 8601 time like "
                           "\"2026-03-31T14:30:00Z\"") from None
    _year_ok(parsed.year, "DateTime")
    return parsed


def parse_json(value: object) -> object:
    """Any JSON value, without NUL characters (PostgreSQL's jsonb cannot store them)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise GraphQLError("JSON must not contain NUL characters")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise GraphQLError("JSON must not contain NUL characters")
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif (isinstance(item, float) and item != item) or item in (float("inf"), float("-inf")):
            raise GraphQLError("JSON numbers must be finite")
    return value


def _json_literal(node: ValueNode, variables: Any = None) -> object:
    return parse_json(_literal_value(node, variables))


def _literal_value(node: ValueNode, variables: Any) -> object:
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, ListValueNode):
        return [_literal_value(v, variables) for v in node.values]
    if isinstance(node, ObjectValueNode):
        return {f.name.value: _literal_value(f.value, variables) for f in node.fields}
    name = getattr(getattr(node, "name", None), "value", None)
    if name is not None and variables and name in variables:  # a variable inside JSON
        return variables[name]
    raise GraphQLError("JSON literal is not a value")


def overrides() -> dict[object, ScalarDefinition]:
    """`strawberry.Schema(scalar_overrides=...)` for the input scalars the API defines
    (String and ID are graphql-core's own: their NUL and length checks are the edge's, on
    variables in schema.edge.envelope and on literals in schema.edge.documents). Names,
    descriptions and output are Strawberry's; only the parsing differs."""
    parsers = {
        decimal.Decimal: (parse_decimal, _decimal_literal),
        dt.date: (parse_date, lambda node, _v=None: parse_date(_literal_text(node))),
        dt.datetime: (parse_datetime,
                      lambda node, _v=None: parse_datetime(_literal_text(node))),
        JSON: (parse_json, _json_literal),
    }
    result: dict[object, ScalarDefinition] = {}
    for origin, (parse_value, parse_literal) in parsers.items():
        base = DEFAULT_SCALAR_REGISTRY[origin]
        result[origin] = dataclasses.replace(base, parse_value=parse_value,
                                             parse_literal=parse_literal)
    return result
