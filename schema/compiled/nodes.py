"""`node(id)` as one statement for the table-backed types the compiler covers.

The resolver decodes the global id, requires the type's scope (NODE_SCOPES, checked by
the extension for each caller before the plan runs) and loads the row by id under RLS:
null when it is not there. The statement does the same lookup; no row is a null answer.
An id that does not decode, or a type outside TABLES, is left to the resolver (`None`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import TextClause, text
from strawberry.relay import GlobalID

from schema.compiled.objects import ObjectCompiler, Row
from schema.compiled.selection import Field

TABLES = {"Deal": "deals", "User": "users", "Contact": "contacts", "Company": "companies",
          "Stage": "stages", "Pipeline": "pipelines"}


def node_target(c: ObjectCompiler, f: Field) -> tuple[str, uuid.UUID] | None:
    """The type and row id the id names, when the compiler covers the type and the id
    decodes."""
    try:
        found = GlobalID.from_id(c.selector.arguments(f)["id"])
        row_id = uuid.UUID(found.node_id)
    except (ValueError, TypeError):
        return None
    return (found.type_name, row_id) if found.type_name in TABLES else None


def compile_node(c: ObjectCompiler, f: Field) -> TextClause | None:
    """The object's JSON text (no row: not found, null), or None: resolve it."""
    target = node_target(c, f)
    if target is None:
        return None
    type_name, row_id = target
    alias = c.alias("n")
    inner = c.object(type_name, f, Row(alias))
    return text(f"SELECT ({inner})::text FROM {TABLES[type_name]} {alias} "
                f"WHERE {alias}.id = {c.param(row_id, 'uuid')}")
