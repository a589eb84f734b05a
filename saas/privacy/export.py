"""Everything stored about one person, as JSON (the right of access).

The contact row (with its company and unsubscribe state, and the ids of records merged into
it), the deals naming it (with their field history and activities), campaign enrollments of
those deals or of the contact, and every campaign message sent to the person's address.
Ids are the API's global ids. The audit trail records `personal_data.exported`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from strawberry.relay import GlobalID

from saas.db import UnitOfWork
from saas.errors import NotFound
from tenants import audit
from tenants.audit import Action
from tenants.principal import Principal
from tenants.scopes import Scope

_IDS = {"id": None, "company_id": "Company", "deal_id": "Deal", "stage_id": "Stage",
        "pipeline_id": "Pipeline", "campaign_id": "Campaign", "owner_id": "User",
        "enrollment_id": "CampaignEnrollment", "contact_id": "Contact",
        "to_stage_id": "Stage", "from_stage_id": "Stage", "actor_user_id": "User"}


def _value(key: str, value: Any, own_type: str) -> Any:
    if isinstance(value, uuid.UUID):
        type_name = _IDS.get(key) or own_type
        return str(GlobalID(type_name, str(value)))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(result: Any, own_type: str) -> list[dict[str, Any]]:
    keys = list(result.keys())
    return [{k: _value(k, v, own_type) for k, v in zip(keys, row, strict=True)}
            for row in result]


async def export_contact(*, uow: UnitOfWork, principal: Principal,
                         contact_id: uuid.UUID) -> dict[str, Any]:
    principal.require(Scope.PRIVACY_ADMIN)
    p = {"c": contact_id}
    contacts = _rows(await uow.session.execute(text(
        "SELECT c.id, c.name, c.email, c.phone, c.company_id, co.name AS company_name, "
        "c.unsubscribed_at, c.created_at, c.updated_at FROM contacts c "
        "LEFT JOIN companies co ON co.id = c.company_id WHERE c.id = :c"), p), "Contact")
    if not contacts:
        raise NotFound("contact not found", field="contactId")
    contact = contacts[0]
    merged = await uow.session.execute(text(
        "SELECT merged_id FROM contact_merges WHERE survivor_id = :c ORDER BY merged_at"), p)
    contact["merged_ids"] = [str(GlobalID("Contact", str(m))) for (m,) in merged]
    deals = _rows(await uow.session.execute(text(
        "SELECT d.id, d.title, d.amount, d.currency, d.pipeline_id, d.stage_id, "
        "s.name AS stage_name, d.owner_id, d.expected_close_date, d.temperature, d.labels, "
        "d.custom_fields, d.lost_reason, d.created_at, d.updated_at, d.archived_at "
        "FROM deals d JOIN stages s ON s.id = d.stage_id WHERE d.contact_id = :c "
        "ORDER BY d.created_at, d.id"), p), "Deal")
    deal_ids = [uuid.UUID(GlobalID.from_id(d["id"]).node_id) for d in deals]
    q = {"d": deal_ids, "c": contact_id, "email": contact["email"] or ""}
    history = _rows(await uow.session.execute(text(
        "SELECT deal_id, seq, kind, from_stage_id, to_stage_id, amount, currency, lost_reason, "
        "data, actor_user_id, occurred_at FROM stage_events WHERE deal_id = ANY(:d) "
        "ORDER BY seq"), q), "Deal")
    activities = _rows(await uow.session.execute(text(
        "SELECT id, deal_id, kind, subject, note, owner_id, due_at, done_at, created_at "
        "FROM activities WHERE deal_id = ANY(:d) ORDER BY created_at, id"), q), "Activity")
    for deal in deals:
        deal["history"] = [h for h in history if h["deal_id"] == deal["id"]]
        deal["activities"] = [a for a in activities if a["deal_id"] == deal["id"]]
    enrollments = _rows(await uow.session.execute(text(
        "SELECT e.id, e.campaign_id, c.name AS campaign_name, e.deal_id, e.status, "
        "e.stop_reason, e.next_step, e.enrolled_at, e.finished_at FROM campaign_enrollments e "
        "JOIN campaigns c ON c.id = e.campaign_id "
        "WHERE e.contact_id = :c OR e.deal_id = ANY(:d) ORDER BY e.enrolled_at, e.id"), q),
        "CampaignEnrollment")
    sends = _rows(await uow.session.execute(text(
        "SELECT enrollment_id, campaign_id, deal_id, step, status, recipient, subject, body, "
        "sent_at, created_at FROM campaign_sends "
        "WHERE enrollment_id IN (SELECT id FROM campaign_enrollments WHERE contact_id = :c "
        "OR deal_id = ANY(:d)) OR (:email <> '' AND lower(recipient) = lower(:email)) "
        "ORDER BY created_at, enrollment_id, step"), q), "CampaignSend")
    await audit.record(uow, principal, Action.DATA_EXPORTED, target=("Contact", contact_id),
                       details={"deals": len(deals), "sends": len(sends)})
    return {"contact": contact, "deals": deals, "campaign_enrollments": enrollments,
            "campaign_messages": sends}
