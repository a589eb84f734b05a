"""Variable values checked against the operation before it runs, each error with its path.

graphql-core would report the same failures during execution, but in one message per
variable with Python's rendering of the value; here every failure is a `BAD_USER_INPUT`
error naming the field in the API's one path style (`input.stages.0.name`).
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, Undefined
from graphql.execution.values import get_variable_signature  # type: ignore[attr-defined]
from graphql.type import is_non_null_type
from graphql.utilities import coerce_input_value, validate_input_value

_FOUND = re.compile(r",?\s*found:.*$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:unknown|required) field '(\w+)'")
MAX_ERRORS = 20


def field_path(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts)


def _clean(message: str) -> str:
    message = re.sub(r"\bNone\b", "null", _FOUND.sub("", message).rstrip())
    return message if message.endswith(".") else message + "."


def check(schema: GraphQLSchema, operation: OperationDefinitionNode,
          values: dict[str, Any], *, hide_suggestions: bool) -> list[GraphQLError]:
    """The coercion errors of `values` for `operation`'s variables (empty: all fine)."""
    errors: list[GraphQLError] = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if isinstance(signature, GraphQLError):  # validation reports unknown types
            continue
        name = signature.name
        value = values.get(name, Undefined)
        if value is Undefined:
            if is_non_null_type(signature.type) and definition.default_value is None:
                errors.append(_error(f"'{name}' is required ({signature.type} was not "
                                     "provided).", name))
            continue
        if coerce_input_value(value, signature.type) is not Undefined:
            continue

        def on_error(error: GraphQLError, path: list[str | int], name: str = name) -> None:
            if len(errors) < MAX_ERRORS:
                named = _NAMED_FIELD.search(error.message)
                where = field_path([name, *path, *([named.group(1)] if named else [])])
                errors.append(_error(f"'{where}': {_clean(error.message)}", where))

        validate_input_value(value, signature.type, on_error, hide_suggestions)
    return errors


def _error(message: str, field: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "field": field})
