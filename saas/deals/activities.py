"""Activities on deals: calls, meetings, emails and tasks, due and done."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on

from saas.db import UnitOfWork
from saas.deals.models import Activity
from saas.deals.permissions import require_edit
from saas.deals.service import check_active, get
from saas.errors import NotFound, ValidationFailed
from tenants.principal import Principal
from tenants.scopes import Scope

KINDS = ("call", "meeting", "email", "task")
MAX_NOTE = 20000


async def create(
    *, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID, kind: str, subject: str,
    note: str | None, due_at: datetime | None, done_at: datetime | None,
) -> Activity:
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id)
    await require_edit(uow, principal, deal)
    check_active(deal)
    if kind not in KINDS:
        raise ValidationFailed("kind must be call, meeting, email or task", field="kind")
    subject = subject.strip()
    if not subject or len(subject) > 300:
        raise ValidationFailed("subject must be 1-300 characters", field="subject")
    for name, value in (("dueAt", due_at), ("doneAt", done_at)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed("times need a time zone offset", field=name)
    activity = Activity(tenant_id=principal.tenant_id, id=uuid.uuid4(), deal_id=deal.id,
                        kind=kind, subject=subject, note=note, owner_id=principal.user_id,
                        due_at=due_at, done_at=done_at)
    uow.session.add(activity)
    await uow.session.flush()
    await uow.session.refresh(activity)
    return activity


async def complete(
    *, uow: UnitOfWork, principal: Principal, activity_id: uuid.UUID
) -> Activity:
    principal.require(Scope.DEALS_WRITE)
    activity = await uow.session.get(Activity, (principal.tenant_id, activity_id))
    if activity is None:
        raise NotFound("activity not found", field="activityId")
    await require_edit(uow, principal, await get(uow=uow, deal_id=activity.deal_id))
    if activity.done_at is None:
        activity.done_at = func.now()
        await uow.session.flush()
        await uow.session.refresh(activity)
    return activity


async def for_deal(*, uow: UnitOfWork, deal_id: uuid.UUID) -> list[Activity]:
    rows = await uow.session.execute(
        select(Activity).where(Activity.deal_id == deal_id)
        .order_by(Activity.due_at.asc().nulls_last(), Activity.created_at))
    return list(rows.scalars())


async def next_for_deals(
    *, uow: UnitOfWork, deal_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Activity]:
    """Each deal's next open activity (earliest due), in one query."""
    rows = await uow.session.execute(
        select(Activity).where(Activity.deal_id.in_(deal_ids), Activity.done_at.is_(None),
                               Activity.due_at.is_not(None))
        .order_by(Activity.deal_id, Activity.due_at, Activity.id)
        .ext(distinct_on(Activity.deal_id)))
    return {a.deal_id: a for a in rows.scalars()}


async def _editable(uow: UnitOfWork, principal: Principal, activity_id: uuid.UUID) -> Activity:
    principal.require(Scope.DEALS_WRITE)
    activity = (await uow.session.execute(
        select(Activity).where(Activity.id == activity_id).with_for_update())
    ).scalar_one_or_none()
    if activity is None:
        raise NotFound("activity not found", field="activityId")
    deal = await get(uow=uow, deal_id=activity.deal_id)
    await require_edit(uow, principal, deal)
    check_active(deal)
    return activity


async def update(*, uow: UnitOfWork, principal: Principal, activity_id: uuid.UUID,
                 fields: dict[str, Any]) -> Activity:
    """Change the given fields (kind, subject, note, dueAt, doneAt; None clears the optional
    ones) of an activity on a deal the caller may edit."""
    activity = await _editable(uow, principal, activity_id)
    if "kind" in fields and fields["kind"] not in KINDS:
        raise ValidationFailed("kind must be call, meeting, email or task", field="kind")
    if "subject" in fields:
        subject = (fields["subject"] or "").strip()
        if not subject or len(subject) > 300:
            raise ValidationFailed("subject must be 1-300 characters", field="subject")
        fields["subject"] = subject
    for name, field in (("due_at", "dueAt"), ("done_at", "doneAt")):
        value = fields.get(name)
        if value is not None and value.tzinfo is None:
            raise ValidationFailed("times need a time zone offset", field=field)
    if "note" in fields and fields["note"] is not None and len(fields["note"]) > MAX_NOTE:
        raise ValidationFailed(f"a note is at most {MAX_NOTE} characters", field="note")
    for name, value in fields.items():
        setattr(activity, name, value)
    await uow.session.flush()
    await uow.session.refresh(activity)
    return activity


async def delete(*, uow: UnitOfWork, principal: Principal, activity_id: uuid.UUID) -> uuid.UUID:
    activity = await _editable(uow, principal, activity_id)
    await uow.session.delete(activity)
    await uow.session.flush()
    return activity.id
