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

from sqlalchemy import Select

from saas.deals import search
from saas.deals.models import Deal
from saas.errors import DomainError
from schema.compiled.connections import Page, base64url, compile_connection
from schema.compiled.objects import ObjectCompiler, iso_date, iso_datetime
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
    return base64url(raw)


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
    python_type = search.ORDERS[order][0].type.python_type
    page = Page(table=Deal.__table__, where=q.where, filters=search.where_clauses(flt),
                key=q.key, ordering=q.ordering, limit=q.limit, first=int(args["first"]))
    return compile_connection(c, f, "Deal", page,
                              lambda alias: cursor_sql(f"{alias}._key", f"{alias}.id",
                                                       python_type))
