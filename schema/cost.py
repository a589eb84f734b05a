"""The static cost of an operation: how many objects it may ask for, known before it runs.

Every field that returns objects costs the number of objects it can return, given how many
of its parents there can be. A list multiplies everything below it by its size: the `first`
(or `limit`, `dealsPerStage`) argument as sent, else that argument's default, else a fixed
bound of the field (a pipeline has at most 30 stages) or `DEFAULT_LIST_SIZE`. Connections
and pages take the size from their own field (`deals(first: 50) { edges { node } }`: the
edges are the 50). Scalars cost nothing; their parents paid.

    campaigns(first: 100) { enrollments(first: 500) { campaign { enrollments(first: 500) ...
      100 campaigns + 50,000 enrollments + 50,000 campaigns + 25,000,000 enrollments ...

The edge refuses an operation whose cost exceeds GRAPHQL_MAX_COST before it runs, and every
response reports `extensions.cost {requested, limit}`; rate limits can spend the same
number (schema/cost.py is the one place that knows how).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
    is_list_type,
)
from graphql.language import OperationType

SIZE_ARGUMENTS = ("first", "limit", "dealsPerStage")
DEFAULT_LIST_SIZE = 10
# Lists without a size argument whose length the domain bounds (saas/*/service.py limits).
LIST_SIZES: dict[tuple[str, str], int] = {
    ("Board", "columns"): 30, ("Pipeline", "stages"): 30, ("StagesPayload", "stages"): 30,
    ("PipelineAnalytics", "funnel"): 30, ("PipelineAnalytics", "conversion"): 30,
    ("PipelineAnalytics", "timeInStage"): 30, ("PipelineAnalytics", "bottlenecks"): 30,
    ("Campaign", "steps"): 20, ("Query", "users"): 100, ("Query", "staleDeals"): 100,
    ("PlanFact", "reps"): 100, ("PlanFact", "teams"): 30, ("Deal", "history"): 20,
    ("Deal", "activities"): 20,
}
# Lists inside a connection or page: sized by the field that returned the connection.
SIZED_BY_PARENT: frozenset[tuple[str, str]] = frozenset({
    ("DealConnection", "edges"), ("AuditEventConnection", "edges"),
    ("StageEventPage", "events"), ("BoardColumn", "deals"),
})


@dataclass(frozen=True)
class Cost:
    requested: int
    limit: int

    @property
    def exceeded(self) -> bool:
        return self.requested > self.limit

    def as_extension(self) -> dict[str, int]:
        return {"requested": self.requested, "limit": self.limit}


def estimate(schema: GraphQLSchema, operation: OperationDefinitionNode,
             fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]) -> int:
    """The operation's cost (a validated document: every field exists)."""
    root = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
            OperationType.SUBSCRIPTION: schema.subscription_type}[operation.operation]
    if root is None:
        return 0
    walker = _Walker(schema, fragments, variables)
    return walker.selection_set(root, operation.selection_set, multiplier=1, pending=None,
                                seen=frozenset())


def fragments_of(definitions: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}


class _Walker:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection_set(self, parent: Any, selection_set: SelectionSetNode, *, multiplier: int,
                      pending: int | None, seen: frozenset[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection, multiplier, pending, seen)
            elif isinstance(selection, InlineFragmentNode):
                target = (self.schema.get_type(selection.type_condition.name.value)
                          if selection.type_condition else parent)
                total += self.selection_set(target, selection.selection_set,
                                            multiplier=multiplier, pending=pending, seen=seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # validation refuses cycles anyway
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selection_set(target, fragment.selection_set,
                                            multiplier=multiplier, pending=pending,
                                            seen=seen | {name})
        return total

    def field(self, parent: Any, node: FieldNode, multiplier: int, pending: int | None,
              seen: frozenset[str]) -> int:
        fields = getattr(parent, "fields", None)
        definition: GraphQLField | None = fields.get(node.name.value) if fields else None
        if definition is None or node.selection_set is None:
            return 0  # a scalar, an enum or __typename
        named = get_named_type(definition.type)
        if not is_composite_type(named):
            return 0
        key = (parent.name, node.name.value)
        size = self.size_argument(definition, node)
        if _is_list(definition.type):
            if size is not None:
                count, pending = size, None
            elif key in SIZED_BY_PARENT and pending is not None:
                count, pending = pending, None
            else:  # a bounded list; a size from above still waits for its list
                count = LIST_SIZES.get(key, DEFAULT_LIST_SIZE)
        else:  # an object; a connection keeps its size for the list inside it
            count = 1
            pending = size if size is not None else pending
        below = multiplier * count
        return below + self.selection_set(named, node.selection_set, multiplier=below,
                                          pending=pending, seen=seen)

    def size_argument(self, definition: GraphQLField, node: FieldNode) -> int | None:
        for name in SIZE_ARGUMENTS:
            if name not in definition.args:
                continue
            value: Any = None
            for argument in node.arguments or ():
                if argument.name.value != name:
                    continue
                if isinstance(argument.value, IntValueNode):
                    value = int(argument.value.value)
                elif isinstance(argument.value, VariableNode):
                    value = self.variables.get(argument.value.name.value)
            if value is None:
                value = definition.args[name].default_value
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, value)
            return DEFAULT_LIST_SIZE
        return None


def _is_list(type_: GraphQLOutputType) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return is_list_type(type_) or isinstance(type_, GraphQLList)


