"""Contact and company lists: a text filter, name order, keyset pagination (a cursor stays
valid while rows are added or removed: it is the last row's (lower(name), id))."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, tuple_

from saas.contacts.models import Company, Contact
from saas.db import UnitOfWork
from saas.errors import LimitExceeded, ValidationFailed

MAX_PAGE = 200


def _cursor(name: str, id: uuid.UUID) -> str:
    raw = json.dumps([name.lower(), str(id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        name, id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(name), uuid.UUID(id)
    except (ValueError, TypeError) as e:
        raise ValidationFailed("invalid cursor", field="after") from e


def _pattern(text: str) -> str:
    return "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class Page:
    rows: list[Any]
    cursors: list[str]
    has_next: bool
    total: int


async def page(*, uow: UnitOfWork, model: type[Contact] | type[Company], first: int,
               after: str | None, search: str | None,
               company_id: uuid.UUID | None = None) -> Page:
    if not 0 < first <= MAX_PAGE:
        raise LimitExceeded(f"first must be 1-{MAX_PAGE}", field="first")
    clauses = []
    if search and search.strip():
        p = _pattern(search)
        if model is Contact:
            clauses.append(or_(Contact.name.ilike(p), Contact.email.ilike(p),
                               Contact.phone.ilike(p)))
        else:
            clauses.append(or_(Company.name.ilike(p), Company.domain.ilike(p)))
    if company_id is not None and model is Contact:
        clauses.append(Contact.company_id == company_id)
    key = tuple_(func.lower(model.name), model.id)
    query = select(model).where(*clauses)
    total = int((await uow.session.execute(
        select(func.count()).select_from(model).where(*clauses))).scalar_one())
    if after:
        name, id = _decode(after)
        query = query.where(key > tuple_(name, id))
    rows: list[Any] = list((await uow.session.execute(
        query.order_by(func.lower(model.name), model.id).limit(first + 1))).scalars())
    shown = rows[:first]
    return Page(shown, [_cursor(r.name, r.id) for r in shown], len(rows) > first, total)
