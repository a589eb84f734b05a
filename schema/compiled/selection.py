"""A validated operation's selections as the executor would see them: fields merged by
response key, fragments expanded, @skip/@include applied, arguments coerced.

graphql-core does this inside its executor; the compiler needs the same view before
execution, so it reproduces CollectFields (GraphQL spec 6.3.2) over the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
    is_abstract_type,
)
from graphql.execution.values import get_argument_values, get_directive_values


class Unsupported(Exception):
    """The selection needs resolvers; the whole operation goes through GraphQL."""


@dataclass
class Field:
    """One response key: the merged field nodes of one field of `parent`."""

    key: str
    name: str
    parent: GraphQLObjectType
    nodes: list[FieldNode] = field(default_factory=list)

    @property
    def definition(self) -> GraphQLField:
        if self.name not in self.parent.fields:
            raise Unsupported(f"{self.parent.name}.{self.name}")
        found: GraphQLField = self.parent.fields[self.name]
        return found


@dataclass
class Selector:
    """Collects fields of one operation under its coerced variables."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: Any  # graphql-core VariableValues (or a plain dict)

    def fields(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> list[Field]:
        """The sub-fields of the merged `nodes` (fields of type `parent`), by response key
        in first-occurrence order, as graphql-core's executor groups them."""
        grouped: dict[str, Field] = {}
        for node in nodes:
            if node.selection_set is not None:
                self._collect(parent, node.selection_set, grouped, set())
        return list(grouped.values())

    def root(self, parent: GraphQLObjectType, selection_set: SelectionSetNode) -> list[Field]:
        grouped: dict[str, Field] = {}
        self._collect(parent, selection_set, grouped, set())
        return list(grouped.values())

    def arguments(self, f: Field) -> dict[str, Any]:
        return get_argument_values(f.definition, f.nodes[0], self.variables)

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include and include.get("if") is False)

    def _applies(self, parent: GraphQLObjectType, type_name: str | None) -> bool:
        if type_name is None or type_name == parent.name:
            return True
        condition = self.schema.get_type(type_name)
        return is_abstract_type(condition) and self.schema.is_sub_type(
            condition, parent)

    def _collect(self, parent: GraphQLObjectType, selection_set: SelectionSetNode,
                 grouped: dict[str, Field], visited: set[str]) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                entry = grouped.get(key)
                if entry is None:
                    entry = grouped[key] = Field(key, selection.name.value, parent)
                entry.nodes.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value \
                    if selection.type_condition else None
                if self._applies(parent, condition):
                    self._collect(parent, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is None:
                    raise Unsupported(f"fragment {name}")
                if self._applies(parent, fragment.type_condition.name.value):
                    self._collect(parent, fragment.selection_set, grouped, visited)
