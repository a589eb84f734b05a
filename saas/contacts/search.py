"""Contact and company lists: a text filter, name order, keyset pagination (a cursor stays
valid while rows are added or removed: it is the last row's (lower(name), id)).

The sort key is PostgreSQL's lower(name), read back with each row: Python's str.lower
differs from PostgreSQL's for some letters (under C.UTF-8, lower('İ') is 'i', Python's is
'i̇'), and a cursor built from Python's would skip rows that sort between the two.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, tuple_

from saas.contacts.models import Company, Contact
from saas.db import UnitOfWork
from saas.errors import LimitExceeded, ValidationFailed

MAX_PAGE = 200


def encode_cursor(key: str, id: uuid.UUID) -> str:
    """base64url (no padding) of the JSON `[key, "id"]`, non-ASCII as itself (so that
    schema.compiled.contacts renders it from to_json(key) byte for byte)."""
    raw = json.dumps([key, str(id)], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        name, id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(name, str):
            raise TypeError
        return name, uuid.UUID(id)
    except (ValueError, TypeError) as e:
        raise ValidationFailed("invalid cursor", field="after") from e


def _pattern(text: str) -> str:
    return "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Model = type[Contact] | type[Company]


@dataclass(frozen=True)
class PageQuery:
    """A page's rows, one definition for the resolvers and the compiled reads: the
    filters (what totalCount counts), the keyset condition after the cursor, the sort key
    and the ordering."""

    filters: list[ColumnElement[bool]]
    where: list[ColumnElement[bool]]  # filters and the keyset condition
    key: Any
    ordering: tuple[Any, Any]
    limit: int  # first + 1: one more row tells whether there is a next page


def page_query(*, model: Model, first: int, after: str | None, search: str | None,
               company_id: uuid.UUID | None = None) -> PageQuery:
    if not 0 < first <= MAX_PAGE:
        raise LimitExceeded(f"first must be 1-{MAX_PAGE}", field="first")
    filters: list[ColumnElement[bool]] = []
    if search and search.strip():
        p = _pattern(search)
        if model is Contact:
            filters.append(or_(Contact.name.ilike(p), Contact.email.ilike(p),
                               Contact.phone.ilike(p)))
        else:
            filters.append(or_(Company.name.ilike(p), Company.domain.ilike(p)))
    if company_id is not None and model is Contact:
        filters.append(Contact.company_id == company_id)
    key = func.lower(model.name)
    where = list(filters)
    if after:
        name, id = _decode(after)
        where.append(tuple_(key, model.id) > tuple_(name, id))
    return PageQuery(filters=filters, where=where, key=key,
                     ordering=(key.asc(), model.id.asc()), limit=first + 1)


@dataclass
class Page:
    rows: list[Any]
    cursors: list[str]
    has_next: bool
    total: int


async def page(*, uow: UnitOfWork, model: Model, first: int, after: str | None,
               search: str | None, company_id: uuid.UUID | None = None) -> Page:
    q = page_query(model=model, first=first, after=after, search=search,
                   company_id=company_id)
    total = int((await uow.session.execute(
        select(func.count()).select_from(model).where(*q.filters))).scalar_one())
    found: list[Any] = list((await uow.session.execute(
        select(model, q.key).where(*q.where).order_by(*q.ordering).limit(q.limit))).all())
    shown = found[:first]
    return Page([r for r, _ in shown], [encode_cursor(k, r.id) for r, k in shown],
                len(found) > first, total)
