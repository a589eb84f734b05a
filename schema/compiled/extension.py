"""Compiled reads: a validated query over table-backed types answered by one SQL statement.

A schema extension at the execution step: parsing, validation (with its caches and limits)
and authentication have run as usual. When every root field of the query is one the
compiler covers (`board`, `deals`) with a selection it can express, and the caller holds
the scope those fields require, the operation's JSON is built in PostgreSQL in one
statement, in the caller's tenant unit of work under RLS, and spliced into the response
unparsed (orjson.Fragment). Otherwise -- any field that needs a resolver, input the
resolvers would refuse, a pipeline that is not found -- the operation runs through the
resolvers as before, so errors, nulls and permissions stay exactly theirs
(tests/compiled/test_equality.py compares the two paths).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLSchema, OperationType, get_operation_ast
from graphql.execution.values import get_variable_values
from prometheus_client import Counter
from sqlalchemy import Executable, Text, TextClause, column, select
from strawberry.extensions import SchemaExtension

from schema.compiled.board import compile_board
from schema.compiled.deals import compile_deals
from schema.compiled.objects import ObjectCompiler
from schema.compiled.selection import Selector, Unsupported
from tenants.scopes import Scope

log = logging.getLogger("saas.compiled")

COMPILED = Counter("saas_compiled_reads_total",
                   "Query operations by how they were executed", ["result"])

ROOTS = {"board", "deals"}
_PARAM = re.compile(r":(p\d+)\b")


def plan(schema: GraphQLSchema, document: Any, operation_name: str | None,
         raw_variables: dict[str, Any] | None, tenant_id: Any) -> list[tuple[str, Any]] | None:
    """[(response key, statement or a literal)] for the operation's root fields, or None."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return None
    variables = get_variable_values(schema, operation.variable_definitions or (),
                                    raw_variables or {})
    if isinstance(variables, list):  # coercion errors: the executor reports them
        return None
    fragments = {d.name.value: d for d in document.definitions
                 if d.kind == "fragment_definition"}
    selector = Selector(schema, fragments, variables)
    assert schema.query_type is not None
    roots = selector.root(schema.query_type, operation.selection_set)
    if not roots:
        return None
    compiler = ObjectCompiler(schema, selector)
    planned: list[tuple[str, Any]] = []
    for f in roots:
        if f.name == "__typename":
            planned.append((f.key, "Query"))
            continue
        if f.name not in ROOTS:
            return None
        statement: Executable | None = (compile_board(compiler, f, tenant_id)
                                        if f.name == "board" else compile_deals(compiler, f))
        if statement is None:
            return None
        if isinstance(statement, TextClause):
            names = set(_PARAM.findall(statement.text))
            statement = statement.bindparams(
                **{k: v for k, v in compiler.params.items() if k in names})
        planned.append((f.key, statement))
    if all(isinstance(s, str) for _, s in planned):
        return None  # only __typename: nothing to gain
    return planned


def _one_statement(statements: list[Any]) -> Any:
    """One statement for all compiled root fields: itself, or a SELECT of one column each."""
    if len(statements) == 1:
        return statements[0]
    columns = []
    for i, s in enumerate(statements):
        if isinstance(s, TextClause):
            s = s.columns(column("v", Text))
        columns.append(s.scalar_subquery().label(f"c{i}"))
    return select(*columns)


class CompiledReads(SchemaExtension):
    """Answers compilable query operations with one SQL statement (see the module doc)."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        context = ec.context
        principal = getattr(context, "principal", None)
        if (ec.graphql_document is not None and principal is not None
                and context.auth_error is None and context.revoked is None
                and principal.has(Scope.DEALS_READ)):
            try:
                result = await self._execute(ec, context, principal.tenant_id)
            except Unsupported:
                result = None
                COMPILED.labels("unsupported").inc()
            except Exception:
                # Never an answer from here: an exception escaping this hook would reach the
                # client unmapped. The resolvers answer instead (and report a broken
                # transaction as INTERNAL, like any database failure).
                log.exception("compiled read failed; answering through the resolvers")
                COMPILED.labels("failed").inc()
                result = None
            if result is not None:
                ec.result = result
                COMPILED.labels("compiled").inc()
        yield

    async def _execute(self, ec: Any, context: Any, tenant_id: Any) -> ExecutionResult | None:
        schema = ec.schema._schema
        planned = plan(schema, ec.graphql_document, ec.operation_name, ec.variables,
                       tenant_id)
        if planned is None:
            COMPILED.labels("resolvers").inc()
            return None
        statements = [s for _, s in planned if not isinstance(s, str)]
        statement = _one_statement(statements)
        async with context.uow() as uow:
            result = await uow.session.execute(statement)
            row = result.first() if len(statements) > 1 else (result.scalar(),)
        data: dict[str, Any] = {}
        values = iter(row or (None,) * len(statements))
        for key, s in planned:
            if isinstance(s, str):
                data[key] = s
                continue
            value = next(values)
            if value is None:  # not found: the resolver says so, with its error
                COMPILED.labels("resolvers").inc()
                return None
            data[key] = orjson.Fragment(value)
        return ExecutionResult(data=data)
