"""Parsing and validation that leave no cyclic garbage, for the edge's documents.

graphql-core's lexer links tokens both ways and its validation visitors cache bound methods
and closures of themselves: every parsed and validated document was a set of reference
cycles that only the garbage collector frees. A flood of distinct documents filled the
young generation with them, and each collection held the GIL for 70-180 ms (a bystander's
p99 in tests/edge/test_stalls.py). These functions do the same work (graphql-core 3.3's
steps) and cut the cycles afterwards, so a dropped document dies by reference count
(tests/edge/test_documents.py).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    Source,
    Token,
    TypeInfo,
    ValidationContext,
    Visitor,
    visit,
)
from graphql.language.lexer import Lexer
from graphql.language.parser import Parser
from graphql.language.visitor import ParallelVisitor
from graphql.utilities.type_info import TypeInfoVisitor
from graphql.validation.validate import (
    FragmentNestingVisitor,
    ValidationAbortedError,
    query_document_keys_to_validate,
)
from graphql.validation.validation_context import VariableUsageVisitor


def parsed(query: str, max_tokens: int) -> DocumentNode:
    """graphql-core's `parse`, with the tokens' back links cut whatever the outcome. Its
    lexer links the tokens both ways, so every parsed document (and every failed parse, the
    tokens read so far) was a reference cycle that only the garbage collector frees: a flood
    of documents filled the young generation with them, and each collection held the GIL
    for 70-180 ms, which a bystander's p99 showed (tests/edge/test_stalls.py). Singly
    linked, a document dies by reference count when dropped; nothing after parsing reads
    `prev` (tests/edge/test_documents.py)."""
    source = Source(query)
    lexer = Lexer(source)
    try:
        return Parser(source, max_tokens=max_tokens, lexer=lexer).parse_document()
    except GraphQLError as e:
        raise e.with_traceback(None) from None  # its frames hold the parser and lexer
    finally:
        token: Token | None = lexer.token
        while token is not None:
            token.prev, token = None, token.prev


def validated(schema: GraphQLSchema, node: DocumentNode,
              rules: Collection[type[ASTValidationRule]], *,
              hide_suggestions: bool, max_errors: int = 20) -> list[GraphQLError]:
    """graphql-core's `validate` (graphql.validation.validate, 3.3: the same steps), with
    every visitor emptied afterwards. The visitors cache bound methods and closures of
    themselves (reference cycles), and the rules hold the validation context, which holds
    the document: each validated document was ~760 objects of cyclic garbage, so a flood of
    valid documents (the cost flood of tests/edge/test_stalls.py) still fed the young
    generation and its GIL-holding collections."""
    errors: list[GraphQLError] = []

    def on_error(error: GraphQLError) -> None:
        if len(errors) >= max_errors:
            raise ValidationAbortedError(
                "Too many validation errors, error limit reached. Validation aborted.")
        errors.append(error)

    type_info = TypeInfo(schema)
    context = _Context(schema, node, type_info, on_error, hide_suggestions)
    made: list[Any] = [type_info, context]
    try:
        # Inside the try, unlike graphql-core: a rule may report errors while it is made
        # (Strawberry's depth limit does), and the one over `max_errors` raises the abort
        # there, which escaped as a 500.
        visitors: list[Visitor] = []
        for rule in rules:
            visitors.append(rule(context))
            made.append(visitors[-1])
        fragments = {d.name.value: d for d in node.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        if fragments:
            visitors.insert(0, FragmentNestingVisitor(fragments))
            made.append(visitors[0])
        parallel = ParallelVisitor(visitors)
        outer = TypeInfoVisitor(type_info, parallel)
        made += (parallel, outer)
        visit(node, outer, query_document_keys_to_validate)
    except ValidationAbortedError as error:
        error.__context__ = None
        errors.append(error.with_traceback(None))
    except RecursionError:
        errors.append(ValidationAbortedError("Validation aborted."))
    finally:
        for instance in made:
            vars(instance).clear()
    return errors


class _Context(ValidationContext):
    """The validation context whose variable-usage walks leave no cycles either (each walk's
    visitors are emptied, as in `validated`)."""

    def get_variable_usages(self, node: Any) -> list[Any]:
        usages = self._variable_usages.get(node)
        if usages is None:
            fragment = node if isinstance(node, FragmentDefinitionNode) else None
            usage = VariableUsageVisitor(self._type_info, fragment)
            outer = TypeInfoVisitor(self._type_info, usage)
            try:
                visit(node, outer)
                usages = usage.usages
            finally:
                vars(outer).clear()
                vars(usage).clear()
            self._variable_usages[node] = usages
        return usages
