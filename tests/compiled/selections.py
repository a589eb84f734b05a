"""Hypothesis strategies: random valid (and some invalid) selections over the board, the
deal, contact and company connections, stage events and `node`, generated from the schema itself."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema, get_named_type
from hypothesis import strategies as st

from schema.compiled.nodes import TABLES
from schema.compiled.objects import NESTED, SCALARS

# Fields the compiler covers (schema/compiled/); every other field of these types is left
# to the resolvers, and the operation must still come out identical.
COMPILED: dict[str, set[str]] = {
    **{t: set(SCALARS.get(t, {})) | set(NESTED.get(t, {}))
       for t in ("Deal", "User", "Contact", "Company", "Stage", "Pipeline", "StageEvent")},
    "StageEventPage": {"events", "endCursor", "hasMore"},
    "Board": {"pipelineId", "pipelineName", "columns"},
    "BoardColumn": {"stage", "dealCount", "deals"},
    **{f"{t}Connection": {"edges", "pageInfo", "totalCount"}
       for t in ("Deal", "Contact", "Company")},
    **{f"{t}Edge": {"cursor", "node"} for t in ("Deal", "Contact", "Company")},
    "PageInfo": {"hasNextPage", "endCursor"},
}


def resolver_only(schema: GraphQLSchema) -> set[tuple[str, str]]:
    found = set()
    for type_name, fields in COMPILED.items():
        t = schema.get_type(type_name)
        assert isinstance(t, GraphQLObjectType)
        found |= {(type_name, f) for f in t.fields if f not in fields}
    return found


class Selections:
    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.resolver_only = resolver_only(schema)

    def object_type(self, name: str) -> GraphQLObjectType:
        t = self.schema.get_type(name)
        assert isinstance(t, GraphQLObjectType)
        return t

    def selection(self, draw: Any, type_name: str, depth: int) -> str:
        t = self.object_type(type_name)
        names = sorted(t.fields)
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6))
        parts = []
        for name in chosen:
            if (type_name, name) in self.resolver_only and draw(st.integers(0, 5)) > 0:
                continue
            named = get_named_type(t.fields[name].type)
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                if depth <= 0:
                    continue
                inner = self.selection(draw, named.name, depth - 1)
                body = f"{{ {inner} }}"
            else:
                body = ""
            args = ""
            if (type_name, name) == ("Pipeline", "stages"):
                args = draw(st.sampled_from(["", "(includeArchived: true)",
                                             "(includeArchived: false)"]))
            # Mostly no alias; a per-field alias (merges with its twin when drawn twice); and
            # rarely one alias for different fields (a validation error on both paths).
            alias = draw(st.sampled_from(["", "", "", "", "", "", "", f"{name}2: "]))
            if draw(st.integers(0, 40)) == 0:
                alias = "x: "
            text = f"{alias}{name}{args} {body}"
            text = draw(st.sampled_from([
                text, text, text,
                f"... on {type_name} {{ {text} }}",
                f"... @include(if: $yes) {{ {text} }}",
                f"{alias}{name}{args} @skip(if: $yes) {body}",
                f"{alias}{name}{args} @include(if: false) {body}",
            ]))
            parts.append(text)
        if draw(st.booleans()):
            parts.append("__typename")
        if any(i.name == "Node" for i in t.interfaces) and draw(st.integers(0, 4)) == 0:
            parts.append("... on Node { id }")
        if draw(st.integers(0, 5)) == 0:
            parts.append(f"...{type_name}Bits")
        return " ".join(parts) or "__typename"

    def of(self, type_name: str, depth: int = 4) -> st.SearchStrategy[str]:
        return st.composite(lambda draw: self.selection(draw, type_name, depth))()

    def node(self, depth: int = 3) -> st.SearchStrategy[str]:
        """A selection on the Node interface: id, __typename, fragments on the types the
        compiler covers and on some it does not (Activity, Team: resolvers)."""

        def draw_node(draw: Any) -> str:
            parts = draw(st.lists(st.sampled_from(["id", "__typename", "ids: id"]),
                                  max_size=2))
            types = draw(st.lists(st.sampled_from(
                [*sorted(TABLES), *sorted(TABLES), "Activity", "Team"]), max_size=3))
            for type_name in types:
                parts.append(f"... on {type_name} {{ "
                             f"{self.selection(draw, type_name, depth)} }}")
            return " ".join(parts) or "id"

        return st.composite(draw_node)()


FRAGMENTS = {
    "Board": "fragment BoardBits on Board { pipelineName __typename }",
    "BoardColumn": "fragment BoardColumnBits on BoardColumn { dealCount }",
    "Deal": "fragment DealBits on Deal { id version owner { name } }",
    "User": "fragment UserBits on User { email role }",
    "Contact": "fragment ContactBits on Contact { phone company { domain } }",
    "Company": "fragment CompanyBits on Company { name }",
    "Stage": "fragment StageBits on Stage { kind probability }",
    "Pipeline": "fragment PipelineBits on Pipeline { name }",
    "DealConnection": "fragment DealConnectionBits on DealConnection { totalCount }",
    "DealEdge": "fragment DealEdgeBits on DealEdge { cursor }",
    "ContactConnection": "fragment ContactConnectionBits on ContactConnection { totalCount }",
    "ContactEdge": "fragment ContactEdgeBits on ContactEdge { node { name } }",
    "CompanyConnection": "fragment CompanyConnectionBits on CompanyConnection "
                         "{ pageInfo { endCursor } }",
    "CompanyEdge": "fragment CompanyEdgeBits on CompanyEdge { cursor }",
    "Team": "fragment TeamBits on Team { name }",
    "PageInfo": "fragment PageInfoBits on PageInfo { hasNextPage }",
    "StageEvent": "fragment StageEventBits on StageEvent { seq kind }",
    "StageEventPage": "fragment StageEventPageBits on StageEventPage { hasMore }",
    "Activity": "fragment ActivityBits on Activity { subject }",
}


def document(body: str, variables: list[str]) -> str:
    """An operation around `body` with the variables it uses and the fragments it spreads."""
    used = [v for v in variables if f"${v.split(':')[0]}" in body]
    if "$yes" in body:
        used.append("yes: Boolean!")
    header = f"query Q({', '.join('$' + v for v in used)})" if used else "query Q"
    fragments = [f for name, f in FRAGMENTS.items() if f"...{name}Bits" in body]
    return " ".join([f"{header} {{ {body} }}", *fragments])
