"""Compiled reads: a validated query over table-backed types answered by one SQL statement.

A schema extension at the execution step: parsing, validation (with its caches and limits)
and authentication have run as usual. Each root field the compiler covers (`board`,
`deals`, `contactsConnection`, `companiesConnection`, `stageEvents`, `node` of a type in
schema.compiled.nodes.TABLES) with a selection it can express becomes a column of one
statement, run in the caller's tenant unit of work under RLS when the caller holds the
scopes those fields require; its JSON is spliced into the response unparsed
(orjson.Fragment). Root fields it does not cover -- a field inside that needs a resolver,
input the resolvers would refuse, another root field -- are answered by the resolvers,
which execute the document cut to those root fields, and the answers are merged in the
operation's key order (a partial plan; not when the root selects through fragments). If
no root field compiles, a scope is missing or a compiled one is not found (a pipeline),
the resolvers answer the whole operation as before, so errors, nulls and permissions stay
exactly theirs (tests/compiled/test_equality.py compares the two paths). `node` of an id
that is not there is the one null the compiled path answers itself, as the resolver does,
without an error. Below a root field, a field that needs a resolver still sends that whole
root field to the resolvers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from graphql.execution.values import get_variable_values
from prometheus_client import Counter
from sqlalchemy import Executable, Text, TextClause, bindparam, cast, column, func, select, true
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from starlette.requests import Request
from strawberry.extensions import SchemaExtension

from schema.compiled.board import compile_board
from schema.compiled.contacts import compile_companies, compile_contacts
from schema.compiled.deals import compile_deals
from schema.compiled.events import compile_stage_events
from schema.compiled.nodes import compile_node, node_target
from schema.compiled.objects import ObjectCompiler
from schema.compiled.selection import Field, Selector, Unsupported
from schema.nodes import NODE_SCOPES
from tenants.scopes import Scope

log = logging.getLogger("saas.compiled")

COMPILED = Counter("saas_compiled_reads_total",
                   "Query operations by how they were executed", ["result"])

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
TENANT = object()  # stands for the caller's tenant in a cached plan's arguments
MAX_PLANS = 1024

Compile = Callable[[ObjectCompiler, Field], Executable | None]
# Root fields the compiler covers, and the scope each requires (node's: its type's).
ROOTS: dict[str, tuple[Compile, Scope | None]] = {
    "board": (lambda c, f: compile_board(c, f, TENANT), Scope.DEALS_READ),
    "deals": (compile_deals, Scope.DEALS_READ),
    "contactsConnection": (compile_contacts, Scope.CONTACTS_READ),
    "companiesConnection": (compile_companies, Scope.CONTACTS_READ),
    "stageEvents": (compile_stage_events, Scope.DEALS_READ),
    "node": (compile_node, None),
}


@dataclass(frozen=True)
class Plan:
    """One operation's statement: SQL with $n parameters, ready for asyncpg."""

    keys: tuple[tuple[str, str | None], ...]  # response key, and its value if it is literal
    # One statement in its own implicit transaction, which enters the caller's tenant
    # before it reads a row: board_rows does (a board alone), or enter_tenant (_entered).
    sql: str
    args: tuple[Any, ...]  # TENANT where the caller's tenant goes
    scopes: frozenset[Scope]  # the caller must hold all of them, or the resolvers answer
    nullable: frozenset[str]  # response keys whose NULL is the answer (node not found)
    # Root fields the compiler does not cover, answered by the resolvers: their response
    # keys, and the document with only them at the root (None: the statement is all).
    resolved: frozenset[str] = frozenset()
    rest: DocumentNode | None = None


def plan(schema: GraphQLSchema, document: Any, operation_name: str | None,
         raw_variables: dict[str, Any] | None) -> Plan | None:
    """The operation's Plan, or None: the resolvers answer it (Unsupported: a field needs
    them)."""
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
    compiler = ObjectCompiler(schema, selector)
    keys: list[tuple[str, str | None]] = []
    statements: list[Any] = []
    scopes: set[Scope] = set()
    nullable: set[str] = set()
    resolved: set[str] = set()
    unsupported: Unsupported | None = None
    for f in roots:
        if f.name == "__typename":
            keys.append((f.key, "Query"))
            continue
        try:
            compiled_root = _root(compiler, f)
        except Unsupported as e:
            compiled_root, unsupported = None, unsupported or e
        if compiled_root is None:  # the resolvers answer this root field
            resolved.add(f.key)
            keys.append((f.key, None))
            continue
        statement, scope = compiled_root
        if f.name == "node":
            nullable.add(f.key)
        scopes.add(scope)
        keys.append((f.key, None))
        statements.append(statement)
    if not statements:
        if unsupported is not None:
            raise unsupported  # counted as such (a field inside needs a resolver)
        return None  # only __typename, or nothing the compiler covers
    rest = _only(document, operation, resolved) if resolved else None
    if resolved and rest is None:
        return None
    board_only = all(f.name in ("board", "__typename") for f in roots)
    statement = statements[0] if board_only and len(statements) == 1 \
        else _entered(statements, board_only)
    compiled = statement.compile(
        dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors
    values = compiled.construct_params()
    args = []
    for name in compiled.positiontup or ():
        value = values[name]
        processor = processors.get(name)
        args.append(value if value is TENANT or processor is None else processor(value))
    return Plan(keys=tuple(keys), sql=compiled.string, args=tuple(args),
                scopes=frozenset(scopes), nullable=frozenset(nullable),
                resolved=frozenset(resolved), rest=rest)


def _root(compiler: ObjectCompiler, f: Field) -> tuple[Any, Scope] | None:
    """A root field's statement and the scope it needs; None when the resolvers answer it
    (a field the compiler does not cover, or input it leaves to them)."""
    if f.name not in ROOTS:
        return None
    compile_root, scope = ROOTS[f.name]
    if f.name == "node":
        target = node_target(compiler, f)
        if target is None:
            return None
        scope = NODE_SCOPES[target[0]]
    statement = compile_root(compiler, f)
    if statement is None:
        return None
    assert scope is not None
    if isinstance(statement, TextClause):
        statement = compiler.bind(statement)
    return statement, scope


def _only(document: DocumentNode, operation: OperationDefinitionNode,
          keys: set[str]) -> DocumentNode | None:
    """The document with the operation's root selections cut to the fields of `keys` (the
    fragments kept for them); None when the root selects through a fragment, where one
    selection may hold fields of both kinds."""
    kept = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            return None
        if (selection.alias or selection.name).value in keys:
            kept.append(selection)
    cut = OperationDefinitionNode(**{k: getattr(operation, k) for k in operation.keys
                                     if k != "selection_set"},
                                  selection_set=SelectionSetNode(selections=tuple(kept)))
    return DocumentNode(definitions=tuple(
        cut if d is operation else d for d in document.definitions
        if d is operation or not isinstance(d, OperationDefinitionNode)))


def _entered(statements: list[Any], board_only: bool) -> Any:
    """One SELECT of one column per root field; unless all are boards (board_rows enters
    the tenant itself), inside enter_tenant's lateral join (migration 0022): the function
    scan sets the tenant before the read scans a row."""
    columns = []
    for i, s in enumerate(statements):
        if isinstance(s, TextClause):
            s = s.columns(column("v", Text))
        columns.append(s.scalar_subquery().label(f"c{i}"))
    read = select(*columns)
    if board_only:
        return read
    tenant = func.enter_tenant(cast(bindparam("tenant", TENANT), UUID)) \
        .table_valued("id").render_derived(name="t")
    inner = read.subquery("x")
    q = select(*inner.c).where(tenant.c.id.is_not(None)).offset(0).lateral("q")
    return select(*q.c).select_from(tenant.join(q, true()))


_UNSUPPORTED = object()
_plans: OrderedDict[tuple[str, str | None, bytes], Plan | object | None] = OrderedDict()


def cached_plan(schema: GraphQLSchema, ec: Any) -> Plan | object | None:
    """plan() per (document, operation, variables), LRU: a board read again and again is
    compiled once per process (plans hold no tenant and no principal)."""
    key = (ec.query, ec.operation_name, orjson.dumps(ec.variables or {},
                                                      option=orjson.OPT_SORT_KEYS))
    if key in _plans:
        _plans.move_to_end(key)
        return _plans[key]
    found: Plan | object | None
    try:
        found = plan(schema, ec.graphql_document, ec.operation_name, ec.variables)
    except Unsupported:
        found = _UNSUPPORTED
    _plans[key] = found
    if len(_plans) > MAX_PLANS:
        _plans.popitem(last=False)
    return found


class CompiledReads(SchemaExtension):
    """Answers compilable query operations with one SQL statement (see the module doc)."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        context = ec.context
        principal = getattr(context, "principal", None)
        # Only for HTTP requests: their response is encoded by the app's orjson encoder, which
        # splices orjson.Fragment (a websocket's or a direct schema.execute caller's is not).
        if (ec.graphql_document is None or principal is None
                or not isinstance(getattr(context, "request", None), Request)
                or context.auth_error is not None or context.revoked is not None):
            yield
            return
        try:
            answered = await self._execute(ec, context, principal)
        except Exception:
            # Never an answer from here: an exception escaping this hook would reach the
            # client unmapped. The resolvers answer instead (and report a broken
            # transaction as INTERNAL, like any database failure).
            log.exception("compiled read failed; answering through the resolvers")
            COMPILED.labels("failed").inc()
            answered = None
        if answered is None:
            yield
            return
        data, found = answered
        if found.rest is None:
            ec.result = ExecutionResult(data=data)
            COMPILED.labels("compiled").inc()
            yield
            return
        # The other root fields: the resolvers execute the document cut to them, and their
        # answers join the statement's in the operation's key order.
        COMPILED.labels("partial").inc()
        document = ec.graphql_document
        ec.graphql_document = found.rest
        try:
            yield
        finally:
            ec.graphql_document = document
        result = ec.result
        if isinstance(result, ExecutionResult) and result.data is not None:
            resolved = result.data
            merged = {key: resolved[key] if key in found.resolved else data[key]
                      for key, _ in found.keys if key in data or key in resolved}
            resolved.clear()  # in place: Strawberry returns this object
            resolved.update(merged)

    async def _execute(self, ec: Any, context: Any, principal: Any,
                       ) -> tuple[dict[str, Any], Plan] | None:
        """The statement's part of the answer (None: the resolvers answer all of it)."""
        found = cached_plan(ec.schema._schema, ec)
        if not isinstance(found, Plan):
            COMPILED.labels("unsupported" if found is _UNSUPPORTED else "resolvers").inc()
            return None
        if not all(principal.has(s) for s in found.scopes):  # FORBIDDEN is the resolvers'
            COMPILED.labels("resolvers").inc()
            return None
        row = await _fetch(context, found, principal.tenant_id)
        data: dict[str, Any] = {}
        values = iter(row or (None,) * len(found.keys))
        for key, literal in found.keys:
            if literal is not None:
                data[key] = literal
                continue
            if key in found.resolved:
                continue
            value = next(values)
            if value is None and key in found.nullable:
                data[key] = None
                continue
            if value is None:  # not found: the resolver says so, with its error
                COMPILED.labels("resolvers").inc()
                return None
            data[key] = orjson.Fragment(value)
        return data, found


async def _fetch(context: Any, found: Plan, tenant_id: Any) -> Any:
    """The plan's one row, under the caller's tenant, on the driver connection (no ORM)."""
    args = [tenant_id if a is TENANT else a for a in found.args]
    async with _connection(context) as driver:
        return await driver.fetchrow(found.sql, *args)


@asynccontextmanager
async def _connection(context: Any) -> AsyncIterator[Any]:
    """The asyncpg connection: the response cache's (a miss renders on the connection that
    read the version) or one from the pool."""
    if context.pinned_uow is not None:
        conn = await context.pinned_uow.session.connection()
        yield (await conn.get_raw_connection()).driver_connection
        return
    async with context.db.engine.connect() as conn:
        yield (await conn.get_raw_connection()).driver_connection
