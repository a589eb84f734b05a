"""Live events rendered once per selection, not once per subscriber.

Strawberry executes a subscription's selection set for every event and every subscriber.
For a board with 1,000 watchers that is 1,000 identical executions per move. Here, per
process, `SharedRenderingExecutor` (the executor of operations run by the websocket handler
in schema.live.transport) memoises the execution of a live event's selection in the hub's
`RenderCache`, keyed by the event (tenant, seq, card value: `Delivered.render_key`) and the
*selection*: the subscriber's tenant, the operation document and name, and the values of the
variables the selection itself uses. The root field's arguments (`pipelineId`, `after`,
`kinds`) only choose which events arrive, so subscribers at different cursors still share.

A rendering is only shared when the event types have no resolvers and no field middleware
runs (`shareable_types`); direct fan-out is only allowed when no schema extension acts on
each streamed result (`fanout_blockers`).
"""

from __future__ import annotations

import contextvars
import copy
import logging
import uuid
from collections.abc import Awaitable, Hashable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    ExecutionResult as CoreExecutionResult,
)
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    Node,
    VariableNode,
)
from graphql.language import OperationDefinitionNode, print_ast
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.base import get_object_definition

from saas.live.delivered import Key, RenderCache
from schema.context import Context
from schema.live.types import LIVE_TYPES

if TYPE_CHECKING:
    from schema.live.transport import DirectWriter

log = logging.getLogger("schema.live")


def shareable_types(types: Iterable[type] = LIVE_TYPES) -> list[str]:
    """Fields of the live types that would make a rendering depend on the subscriber.

    Empty when every field is plain data; otherwise the offending `Type.field` names.
    """
    offending = []
    for cls in types:
        definition = get_object_definition(cls, strict=True)
        for f in definition.fields:
            if f.base_resolver is not None or f.extensions or f.permission_classes:
                offending.append(f"{definition.name}.{f.python_name}")
    return offending


SHAREABLE = not shareable_types()


class _Frozen:
    """Variable values as a hashable value (None if they cannot be made one)."""

    @staticmethod
    def of(value: Any) -> Hashable:
        if isinstance(value, dict):
            return ("{}", tuple(sorted((k, _Frozen.of(v)) for k, v in value.items())))
        if isinstance(value, (list, tuple)):
            return ("[]", tuple(_Frozen.of(v) for v in value))
        if value is None or isinstance(value, (str, int, float, bool, Enum, uuid.UUID)):
            return (type(value).__name__, value)
        raise TypeError(f"unhashable variable value {type(value).__name__}")


def _selection_variables(operation: OperationDefinitionNode,
                         fragments: dict[str, Any]) -> set[str] | None:
    """Variables the root field's selection (and directives) use; None if not one field."""
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    root = selections[0]
    found: set[str] = set()
    seen_fragments: set[str] = set()
    todo: list[Node] = [*(root.directives or ()), *([root.selection_set]
                                                    if root.selection_set else [])]
    while todo:
        node = todo.pop()
        if isinstance(node, VariableNode):
            found.add(node.name.value)
            continue
        if isinstance(node, FragmentSpreadNode) and node.name.value not in seen_fragments:
            seen_fragments.add(node.name.value)
            definition = fragments.get(node.name.value)
            if definition is not None:
                todo.append(definition)
        for key in node.keys:
            if key == "loc":
                continue
            child = getattr(node, key, None)
            if isinstance(child, Node):
                todo.append(child)
            elif isinstance(child, (list, tuple)):
                todo.extend(c for c in child if isinstance(c, Node))
    return found


_UNSET: Any = object()


class _Rendered:
    """A per-event 'executor' whose result is already known (graphql-core only calls this)."""

    __slots__ = ("result",)

    def __init__(self, result: CoreExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> CoreExecutionResult:
        return self.result


class _Memoising:
    """Runs the real per-event executor once and keeps its result for the others."""

    __slots__ = ("cache", "event", "executor", "selection")

    def __init__(self, executor: Any, cache: RenderCache, event: Key,
                 selection: Hashable) -> None:
        self.executor = executor
        self.cache = cache
        self.event = event
        self.selection = selection

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = self.executor.execute_operation(serially)
        if isinstance(result, CoreExecutionResult):
            self._store(result)
            return result
        if isinstance(result, Awaitable):
            return self._store_later(result)
        return result  # incremental results are not shared

    async def _store_later(self, pending: Awaitable[Any]) -> Any:
        result = await pending
        if isinstance(result, CoreExecutionResult):
            self._store(result)
        return result

    def _store(self, result: CoreExecutionResult) -> None:
        self.cache.put(self.event, self.selection, result)
        if isinstance(result.data, dict) and not result.errors and not result.extensions:
            _shared_data(result.data)


class SharedRenderingExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor; live events' per-event executions are memoised.

    Queries, mutations and other subscriptions run exactly as with the base class: only
    `build_per_event_executor` (subscriptions) changes, and only for payloads carrying a
    `render_key` (schema.live.types.DealEvent).
    """

    _live_selection: Hashable | None = _UNSET

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = writer.get()
        if current is not None and current.executor is None:
            current.executor = self  # the operation's executor (renders for the fan-out)

    def _selection_key(self) -> Hashable | None:
        if self._live_selection is not _UNSET:
            return self._live_selection
        key: Hashable | None = None
        context = self.context_value
        manager = self.middleware_manager
        principal = getattr(context, "principal", None)
        if (SHAREABLE and isinstance(context, Context) and principal is not None
                and not (manager is not None and manager.middlewares)):
            used = _selection_variables(self.operation, self.fragment_definitions)
            if used is not None:
                operation = self.operation
                document = (operation.loc.source.body if operation.loc is not None
                            else print_ast(operation))
                coerced = self.variable_values.coerced
                try:
                    variables = _Frozen.of({k: v for k, v in coerced.items() if k in used})
                except TypeError:
                    variables = None
                if variables is not None:
                    name = operation.name.value if operation.name else None
                    key = Key(principal.tenant_id, document, name, variables)
        self._live_selection = key
        return key

    def _render_cache(self) -> RenderCache | None:
        services = getattr(self.context_value, "services", None)
        hub = getattr(services, "hub", None)
        return cast("RenderCache | None", getattr(hub, "renderings", None))

    def build_per_event_executor(self, payload: Any) -> Any:
        event = getattr(payload, "render_key", None)
        if isinstance(event, Key):
            selection = self._selection_key()
            cache = self._render_cache()
            if selection is not None and cache is not None:
                found = cache.get(event, selection)
                if found is not None:
                    return _Rendered(found)
                return _Memoising(super().build_per_event_executor(payload), cache, event,
                                  selection)
        return super().build_per_event_executor(payload)


_live_schemas: dict[int, tuple[BaseSchema, BaseSchema]] = {}


def live_schema(schema: BaseSchema) -> BaseSchema:
    """The same schema, executing with `SharedRenderingExecutor` (one copy per schema)."""
    found = _live_schemas.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    base = getattr(schema, "execution_context_class", None)
    if base is None or not issubclass(base, StrawberryGraphQLCoreExecutionContext):
        return schema  # a custom executor: leave it alone
    executor: type = (base if issubclass(base, SharedRenderingExecutor) else
                      type(f"SharedRendering{base.__name__}", (SharedRenderingExecutor, base),
                           {}))
    shared = copy.copy(schema)
    shared.execution_context_class = executor  # type: ignore[attr-defined]
    _live_schemas[id(schema)] = (schema, shared)
    return shared


def fanout_blockers(schema: BaseSchema) -> list[str]:
    """What in the schema acts on each streamed result (so direct writes would skip it).

    Direct fan-out writes a `next` message without Strawberry's per-result handling; that
    is only the same when no extension adds results (`get_results`), wraps each streamed
    result (`on_stream_result`) or resolves fields (`resolve`). Empty when none does.
    """
    get_extensions = getattr(schema, "get_extensions", None)
    if get_extensions is None:
        return ["no extensions list"]
    blockers = []
    for extension in get_extensions():
        cls = type(extension)
        for hook in ("get_results", "on_stream_result", "resolve"):
            if getattr(cls, hook, None) is not getattr(SchemaExtension, hook, None):
                blockers.append(f"{cls.__name__}.{hook}")
    return blockers


_fanout_ok: dict[int, tuple[BaseSchema, bool]] = {}


def fanout_allowed(schema: BaseSchema) -> bool:
    found = _fanout_ok.get(id(schema))
    if found is None or found[0] is not schema:
        blockers = fanout_blockers(schema)
        if blockers:
            log.warning("live: direct fan-out off; per-result schema hooks: %s", blockers)
        found = _fanout_ok[id(schema)] = (schema, SHAREABLE and not blockers)
    return found[1]


# The running live operation's direct writer (schema.live.transport sets it for the
# operation's task): the operation's executor registers itself with it.
writer: contextvars.ContextVar[DirectWriter | None] = contextvars.ContextVar(
    "live_direct_writer", default=None)

# The shared results' data by identity, with their encoding ([data, view, encoded]); the
# entry holds the data, so its id cannot be reused while it is here. Small and FIFO: a
# shared result is sent to all of its subscribers within moments (a miss re-encodes).
_ENCODINGS_MAX = 1024
encodings: dict[int, list[Any]] = {}


def _shared_data(data: dict[str, Any]) -> None:
    while len(encodings) >= _ENCODINGS_MAX:
        del encodings[next(iter(encodings))]
    encodings[id(data)] = [data, None, None]
