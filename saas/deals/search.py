"""Deal lists: filters, ordering and keyset pagination (cursors stay valid as deals change)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from saas.contacts.models import Company, Contact
from saas.db import UnitOfWork
from saas.deals.models import Deal
from saas.errors import LimitExceeded, ValidationFailed
from tenants.models import User

MAX_PAGE = 200
MAX_SEARCH = 200  # characters of a search text
FAR_FUTURE = date(9999, 12, 31)


@dataclass
class DealFilter:
    pipeline_id: uuid.UUID | None = None
    stage_ids: list[uuid.UUID] = field(default_factory=list)
    owner_ids: list[uuid.UUID] = field(default_factory=list)
    team_id: uuid.UUID | None = None
    temperatures: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    close_from: date | None = None
    close_to: date | None = None
    text: str | None = None
    archived: str = "active"  # active (default), archived, or all
    contact_ids: list[uuid.UUID] = field(default_factory=list)
    company_ids: list[uuid.UUID] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Refused before any database work: a long pattern makes every ILIKE slow.
        if self.text is not None and len(self.text) > MAX_SEARCH:
            raise ValidationFailed(f"search text is at most {MAX_SEARCH} characters",
                                   field="filter.search")


ARCHIVED = ("active", "archived", "all")

ORDERS: dict[str, tuple[Any, bool]] = {
    # name: (sort expression, descending)
    "UPDATED_AT_DESC": (Deal.updated_at, True),
    "CREATED_AT_DESC": (Deal.created_at, True),
    "AMOUNT_DESC": (Deal.amount, True),
    "EXPECTED_CLOSE_ASC": (func.coalesce(Deal.expected_close_date, FAR_FUTURE), False),
}


def where_clauses(f: DealFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f.archived == "active":
        clauses.append(Deal.archived_at.is_(None))
    elif f.archived == "archived":
        clauses.append(Deal.archived_at.is_not(None))
    if f.pipeline_id:
        clauses.append(Deal.pipeline_id == f.pipeline_id)
    if f.contact_ids:
        clauses.append(Deal.contact_id.in_(f.contact_ids))
    if f.company_ids:
        clauses.append(Deal.company_id.in_(f.company_ids))
    if f.stage_ids:
        clauses.append(Deal.stage_id.in_(f.stage_ids))
    if f.owner_ids:
        clauses.append(Deal.owner_id.in_(f.owner_ids))
    if f.team_id:
        clauses.append(Deal.owner_id.in_(select(User.id).where(User.team_id == f.team_id)))
    if f.temperatures:
        clauses.append(Deal.temperature.in_(f.temperatures))
    if f.labels:
        clauses.append(Deal.labels.contains(f.labels))
    if f.amount_min is not None:
        clauses.append(Deal.amount >= f.amount_min)
    if f.amount_max is not None:
        clauses.append(Deal.amount <= f.amount_max)
    if f.close_from:
        clauses.append(Deal.expected_close_date >= f.close_from)
    if f.close_to:
        clauses.append(Deal.expected_close_date <= f.close_to)
    if f.text and f.text.strip():
        pattern = "%" + f.text.strip().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        clauses.append(or_(
            Deal.title.ilike(pattern),
            Deal.contact_id.in_(select(Contact.id).where(
                or_(Contact.name.ilike(pattern), Contact.email.ilike(pattern)))),
            Deal.company_id.in_(select(Company.id).where(Company.name.ilike(pattern))),
        ))
    return clauses


def encode_cursor(value: Any, id: uuid.UUID) -> str:
    raw = json.dumps([str(value), str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, order: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, id = json.loads(raw)
        expr = ORDERS[order][0]
        python_type = expr.type.python_type
        if python_type is Decimal:
            parsed: Any = Decimal(value)
        elif python_type is date:
            parsed = date.fromisoformat(value)
        else:
            from datetime import datetime

            parsed = datetime.fromisoformat(value)
        return parsed, uuid.UUID(id)
    except (ValueError, TypeError, KeyError) as e:
        raise ValidationFailed("invalid cursor", field="after") from e


@dataclass
class DealPage:
    deals: list[Deal]
    cursors: list[str]
    has_next: bool
    query: Select[Any]


@dataclass
class PageQuery:
    """A page's rows, as one definition for the resolvers and the compiled reads: the
    filter, the keyset condition after the cursor, the sort key and the ordering."""

    where: list[ColumnElement[bool]]
    key: Any
    ordering: tuple[Any, Any]
    limit: int  # first + 1: one more row tells whether there is a next page


def page_query(*, filter: DealFilter, order: str, first: int, after: str | None) -> PageQuery:
    if not 0 < first <= MAX_PAGE:
        raise LimitExceeded(f"first must be 1-{MAX_PAGE}", field="first")
    expr, desc = ORDERS[order]
    clauses = where_clauses(filter)
    if after:
        value, id = _decode_cursor(after, order)
        key = tuple_(expr, Deal.id)
        clauses.append(key < tuple_(value, id) if desc else key > tuple_(value, id))
    ordering = (expr.desc(), Deal.id.desc()) if desc else (expr.asc(), Deal.id.asc())
    return PageQuery(where=clauses, key=expr, ordering=ordering, limit=first + 1)


async def page(
    *, uow: UnitOfWork, filter: DealFilter, order: str, first: int, after: str | None
) -> DealPage:
    q = page_query(filter=filter, order=order, first=first, after=after)
    clauses = where_clauses(filter)
    base = select(Deal).where(and_(*clauses)) if clauses else select(Deal)
    query = select(Deal).where(and_(*q.where)) if q.where else select(Deal)
    rows = list(await uow.session.execute(
        query.order_by(*q.ordering).limit(q.limit).add_columns(q.key)))
    deals = [r[0] for r in rows[:first]]
    cursors = [encode_cursor(r[1], r[0].id) for r in rows[:first]]
    return DealPage(deals=deals, cursors=cursors, has_next=len(rows) > first, query=base)


async def total(*, uow: UnitOfWork, filter: DealFilter) -> int:
    clauses = where_clauses(filter)
    query = select(func.count()).select_from(Deal)
    if clauses:
        query = query.where(and_(*clauses))
    return int((await uow.session.execute(query)).scalar_one())
