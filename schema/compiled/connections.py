"""A Relay connection as one statement: the page's edges, their cursors, pageInfo and
totalCount built in PostgreSQL from one page of rows.

The rows come from the resolver's own page query (saas.deals.search.page_query,
saas.contacts.search.page_query): its filters, keyset condition, ordering and limit
(`first + 1`: the extra row says whether there is a next page). Each connection module
says how its cursor is rendered in SQL, byte for byte as its resolver renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnClause, FromClause, Select, func, literal_column, select, text

from schema.compiled.objects import ObjectCompiler, Row
from schema.compiled.selection import Field


def base64url(expr: str) -> str:
    """Python's base64.urlsafe_b64encode(expr's UTF-8).rstrip('=') in SQL (PostgreSQL's
    base64 breaks lines every 76 characters: the newlines are dropped)."""
    return (f"rtrim(translate(encode(convert_to({expr}, 'UTF8'), 'base64'), "
            f"E'+/\\n', '-_'), '=')")


@dataclass(frozen=True)
class Page:
    """One page of a connection, as the resolver defines it."""

    table: FromClause
    where: list[Any]  # filters and the keyset condition after the cursor
    filters: list[Any]  # what totalCount counts
    key: Any  # the sort key, read back as `_key` for the cursor
    ordering: tuple[Any, ...]
    limit: int  # first + 1
    first: int


def compile_connection(c: ObjectCompiler, f: Field, node_type: str, page: Page,
                       cursor: Any) -> Select[Any]:
    """`f`'s selection on a `{node_type}Connection` over `page`; `cursor(alias)` is the SQL
    of a row's cursor from its `alias._key` and `alias.id`."""
    alias = c.alias(node_type[:1].lower())
    rows = (select(*page.table.c, page.key.label("_key"),
                   func.row_number().over(order_by=page.ordering).label("_rn"))
            .where(*page.where).order_by(*page.ordering).limit(page.limit).subquery(alias))
    row_cursor = cursor(alias)
    shown = f"FILTER (WHERE {alias}._rn <= {page.first})"
    row = Row(alias)

    def edges(sub: Field) -> str:
        edge = c.object(f"{node_type}Edge", sub, row, extra={
            "cursor": lambda _: row_cursor,
            "node": lambda node: c.object(node_type, node, row),
        })
        return f"coalesce(json_agg({edge} ORDER BY {alias}._rn) {shown}, '[]'::json)"

    def page_info(sub: Field) -> str:
        return c.object("PageInfo", sub, row, extra={
            "hasNextPage": lambda _: f"(count({alias}.id) > {page.first})",
            "endCursor": lambda _: f"(array_agg({row_cursor} ORDER BY {alias}._rn DESC) "
                                   f"{shown})[1]",
        })

    total: list[str] = []

    def total_count(sub: Field) -> str:
        total.append(f"t{alias}")
        return f"max(t{alias}.n)"

    connection = c.object(f"{node_type}Connection", f, row, extra={
        "edges": edges, "pageInfo": page_info, "totalCount": total_count})
    column: ColumnClause[Any] = literal_column(f"({connection})::text")
    # GROUP BY (): one row whatever the page holds, even when nothing selected aggregates.
    if not total:
        return select(column).select_from(rows).group_by(text("()"))
    # The count comes first and the page is joined to its one row, so an empty page still
    # gives one row to aggregate (count(id), FILTER and max(n) ignore the empty side).
    count = select(func.count().label("n")).select_from(page.table)
    if page.filters:
        count = count.where(*page.filters)
    counted = count.subquery(total[0])
    return select(column).select_from(counted.outerjoin(rows, literal_column("true"))) \
        .group_by(text("()"))
