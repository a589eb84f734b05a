"""`deals(first, after, filter, orderBy)` as one statement: the page, its cursors, pageInfo
and totalCount built in PostgreSQL.

The page's rows come from saas.deals.search.page_query, the resolver's own definition of
filters, keyset condition and ordering. Cursors are rendered in SQL exactly as
search.encode_cursor renders them in Python (base64url, no padding, of
`json.dumps([str(sort key), str(id)])`). Input the resolver would refuse (ids of the wrong
type, a bad cursor, `first` out of range) is left to the resolver (`None`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnClause, Select, func, literal_column, select, text

from saas.deals import search
from saas.deals.models import Deal
from saas.errors import DomainError
from schema.compiled.objects import ObjectCompiler, Row, iso_date, iso_datetime
from schema.compiled.selection import Field
from schema.deals.inputs import DealFilterInput

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _python_str(expr: str, python_type: type) -> str:
    """SQL for Python's str() of a sort key value as asyncpg returns it."""
    if python_type is Decimal:
        return f"({expr})::text"
    if python_type is date:
        return iso_date(expr)
    return iso_datetime(expr, sep=" ")  # str(datetime) is isoformat(" ")


def cursor_sql(key: str, id: str, python_type: type) -> str:
    """search.encode_cursor in SQL."""
    raw = f"'[\"' || {_python_str(key, python_type)} || '\", \"' || {id}::text || '\"]'"
    return (f"rtrim(translate(encode(convert_to({raw}, 'UTF8'), 'base64'), "
            f"E'+/\\n', '-_'), '=')")


def _filter(value: dict[str, Any] | None) -> search.DealFilter:
    if value is None:
        return search.DealFilter()
    return DealFilterInput(**{_SNAKE.sub("_", k).lower(): v for k, v in value.items()}) \
        .to_filter()


def compile_deals(c: ObjectCompiler, f: Field) -> Select[Any] | None:
    """The connection's JSON, or None: resolve it (the resolver reports the error)."""
    args = c.selector.arguments(f)
    try:
        flt = _filter(args["filter"])
        order = args["orderBy"].value
        q = search.page_query(filter=flt, order=order, first=args["first"],
                              after=args["after"])
    except DomainError:
        return None
    first = int(args["first"])
    alias = c.alias("d")
    rows = (select(*Deal.__table__.c, q.key.label("_key"),
                   func.row_number().over(order_by=q.ordering).label("_rn"))
            .where(*q.where).order_by(*q.ordering).limit(q.limit).subquery(alias))
    python_type = search.ORDERS[order][0].type.python_type
    cursor = cursor_sql(f"{alias}._key", f"{alias}.id", python_type)
    shown = f"FILTER (WHERE {alias}._rn <= {first})"
    deal = Row(alias)

    def edges(sub: Field) -> str:
        edge = c.object("DealEdge", sub, deal, extra={
            "cursor": lambda _: cursor,
            "node": lambda node: c.object("Deal", node, deal),
        })
        return f"coalesce(json_agg({edge} ORDER BY {alias}._rn) {shown}, '[]'::json)"

    def page_info(sub: Field) -> str:
        return c.object("PageInfo", sub, deal, extra={
            "hasNextPage": lambda _: f"(count({alias}.id) > {first})",
            "endCursor": lambda _: f"(array_agg({cursor} ORDER BY {alias}._rn DESC) {shown})[1]",
        })

    total: list[str] = []

    def total_count(sub: Field) -> str:
        total.append(f"t{alias}")
        return f"max(t{alias}.n)"

    connection = c.object("DealConnection", f, deal, extra={
        "edges": edges, "pageInfo": page_info, "totalCount": total_count})
    column: ColumnClause[Any] = literal_column(f"({connection})::text")
    # GROUP BY (): one row whatever the page holds, even when nothing selected aggregates.
    if not total:
        return select(column).select_from(rows).group_by(text("()"))
    # The count comes first and the page is joined to its one row, so an empty page still
    # gives one row to aggregate (count(id), FILTER and max(n) ignore the empty side).
    where = search.where_clauses(flt)
    count = select(func.count().label("n")).select_from(Deal)
    if where:
        count = count.where(*where)
    counted = count.subquery(total[0])
    return select(column).select_from(counted.outerjoin(rows, literal_column("true"))) \
        .group_by(text("()"))
