"""Contacts and companies after creation: update, delete, merge duplicates.

- Update is partial and checks `expectedVersion`.
- Delete unlinks: the person's (or company's) deals stay, with no contact (company); each
  deal gets an `updated` event saying so. Campaign enrollments that mail the deleted contact
  stop (`contact_deleted`).
- Merge moves everything of the duplicate to the survivor: its deals (each with its
  `updated` event, so activities and history follow the deals), campaign enrollments, and
  for companies its contacts. The survivor keeps its own fields and takes the duplicate's
  where its own are empty; a contact stays unsubscribed if either was. Where both took part
  in the same campaign, only the enrollment furthest along stays active (`contact_merged`),
  so nobody gets a message twice. The duplicate's id is remembered (contact_merges), so an
  unsubscribe link mailed to it still works.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text

from saas import entity_events
from saas.campaigns.service import stop_enrollments
from saas.contacts.models import Company, Contact
from saas.contacts.service import check_name, check_phone, company_data, contact_data
from saas.db import UnitOfWork
from saas.deals import events
from saas.deals.models import Deal
from saas.deals.service import UNSET, changed_data, history_value
from saas.errors import NotFound, ValidationFailed, VersionConflict
from tenants import audit
from tenants.principal import Principal
from tenants.scopes import Scope
from tenants.service import validate_email


@dataclass
class ContactFields:
    name: Any = UNSET
    email: Any = UNSET
    phone: Any = UNSET
    company_id: Any = UNSET


@dataclass
class CompanyFields:
    name: Any = UNSET
    domain: Any = UNSET


async def _get(uow: UnitOfWork, model: type[Contact] | type[Company], id: uuid.UUID,
               field: str) -> Any:
    row = (await uow.session.execute(
        select(model).where(model.id == id).with_for_update())).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{model.__name__.lower()} not found", field=field)
    return row


def _check_version(row: Contact | Company, expected: int | None, field: str) -> None:
    if expected is not None and row.version != expected:
        raise VersionConflict(
            f"the {type(row).__name__.lower()} is at version {row.version}, not {expected}; "
            "reload and retry", field=field, current_version=row.version)


def _touch(row: Contact | Company) -> None:
    row.version += 1
    row.updated_at = func.now()


async def _contact_event(uow: UnitOfWork, principal: Principal, kind: str, contact: Contact,
                         *, changed: list[str] | None = None,
                         merged: uuid.UUID | None = None) -> None:
    """The change for webhooks (saas/entity_events.py): the contact as it is now."""
    data: dict[str, Any] = {"contact": contact_data(contact)}
    if changed is not None:
        data["changed"] = changed
    if merged is not None:
        data["merged"] = entity_events.gid("Contact", merged)
    await entity_events.append(uow, kind=kind, entity_type="Contact", entity_id=contact.id,
                               principal=principal, data=data)


async def _gone(uow: UnitOfWork, principal: Principal, kind: str, type_name: str,
                id: uuid.UUID, *, merged_into: uuid.UUID | None = None) -> None:
    """A deletion for webhooks: the id only (and what it was merged into), no personal data."""
    data: dict[str, Any] = {type_name.lower(): {"id": entity_events.gid(type_name, id)}}
    if merged_into is not None:
        data["mergedInto"] = entity_events.gid(type_name, merged_into)
    await entity_events.append(uow, kind=kind, entity_type=type_name, entity_id=id,
                               principal=principal, data=data)


async def _relink_deals(uow: UnitOfWork, principal: Principal, column: str,
                        old: uuid.UUID, new: uuid.UUID | None) -> int:
    """Point every deal at `new` instead of `old` (contact_id or company_id), each with its
    `updated` event and version bump, in id order (a stable lock order)."""
    attribute = getattr(Deal, column)
    deals = list((await uow.session.execute(
        select(Deal).where(attribute == old).order_by(Deal.id).with_for_update())).scalars())
    for deal in deals:
        setattr(deal, column, new)
        deal.version += 1
        deal.updated_at = func.now()
        await uow.session.flush()
        await uow.session.refresh(deal)
        changes = {column: {"from": history_value(old), "to": history_value(new)}}
        await events.append(uow, principal=principal, deal=deal, kind="updated",
                            from_stage_id=deal.stage_id, data=changed_data(changes))
    return len(deals)


async def update_contact(*, uow: UnitOfWork, principal: Principal, contact_id: uuid.UUID,
                         expected_version: int | None, fields: ContactFields) -> Contact:
    principal.require(Scope.CONTACTS_WRITE)
    contact: Contact = await _get(uow, Contact, contact_id, "contactId")
    _check_version(contact, expected_version, "expectedVersion")
    changes: dict[str, Any] = {}
    if fields.name is not UNSET:
        changes["name"] = check_name(fields.name or "")
    if fields.email is not UNSET:
        changes["email"] = validate_email(fields.email) if fields.email else None
    if fields.phone is not UNSET:
        changes["phone"] = check_phone(fields.phone) if fields.phone else None
    if fields.company_id is not UNSET:
        if fields.company_id is not None and await uow.session.get(
                Company, (principal.tenant_id, fields.company_id)) is None:
            raise NotFound("company not found", field="companyId")
        changes["company_id"] = fields.company_id
    changed = {k: v for k, v in changes.items() if getattr(contact, k) != v}
    if changed:
        fields_changed = sorted(changed)
        for key, value in changed.items():
            setattr(contact, key, value)
        _touch(contact)
        await uow.session.flush()
        await uow.session.refresh(contact)
        await _contact_event(uow, principal, "contact.updated", contact,
                             changed=fields_changed)
    return contact


_CONTACT_ENROLLMENTS = ("contact_id = :c OR deal_id IN (SELECT id FROM deals WHERE "
                        "contact_id = :c)")


async def remove_contact(uow: UnitOfWork, principal: Principal, contact: Contact, *,
                         now: datetime) -> int:
    """Delete the (locked) contact row, keeping its deals unlinked; returns how many."""
    await stop_enrollments(
        uow, where=f"({_CONTACT_ENROLLMENTS}) AND campaign_id IN "
                   "(SELECT id FROM campaigns WHERE recipient = 'contact')",
        params={"c": contact.id}, reason="contact_deleted", now=now)
    await uow.session.execute(text(
        "UPDATE campaign_enrollments SET contact_id = NULL WHERE contact_id = :c"),
        {"c": contact.id})
    unlinked = await _relink_deals(uow, principal, "contact_id", contact.id, None)
    await uow.session.delete(contact)
    await uow.session.flush()
    return unlinked


async def delete_contact(*, uow: UnitOfWork, principal: Principal, contact_id: uuid.UUID,
                         expected_version: int | None) -> uuid.UUID:
    """Remove the contact; its deals stay without one (see the module docstring)."""
    principal.require(Scope.CONTACTS_WRITE)
    contact: Contact = await _get(uow, Contact, contact_id, "contactId")
    _check_version(contact, expected_version, "expectedVersion")
    unlinked = await remove_contact(uow, principal, contact, now=datetime.now(UTC))
    await _gone(uow, principal, "contact.deleted", "Contact", contact.id)
    await audit.record(uow, principal, "contact.deleted", target=("Contact", contact.id),
                       details={"deals_unlinked": unlinked})
    return contact.id


_DUPLICATE_ENROLLMENTS = text("""
WITH mine AS (
  SELECT e.id, e.campaign_id, e.next_step, e.enrolled_at
  FROM campaign_enrollments e JOIN campaigns c ON c.id = e.campaign_id
  WHERE c.recipient = 'contact' AND e.status = 'active'
    AND (e.contact_id = :c OR e.deal_id IN (SELECT id FROM deals WHERE contact_id = :c))
), ranked AS (
  SELECT id, row_number() OVER (PARTITION BY campaign_id
                                ORDER BY next_step DESC, enrolled_at, id) AS r
  FROM mine
)
SELECT id FROM ranked WHERE r > 1
""")


async def merge_contacts(*, uow: UnitOfWork, principal: Principal, survivor_id: uuid.UUID,
                         duplicate_id: uuid.UUID, survivor_version: int | None,
                         duplicate_version: int | None) -> Contact:
    """Fold `duplicate_id` into `survivor_id` (see the module docstring)."""
    principal.require(Scope.CONTACTS_WRITE)
    if survivor_id == duplicate_id:
        raise ValidationFailed("a contact cannot be merged into itself", field="duplicateId")
    # Lock both rows in id order, whatever the argument order (no deadlock between two
    # merges of the same pair).
    first, second = sorted([(survivor_id, "survivorId"), (duplicate_id, "duplicateId")])
    locked = {first[0]: await _get(uow, Contact, *first),
              second[0]: await _get(uow, Contact, *second)}
    survivor: Contact = locked[survivor_id]
    duplicate: Contact = locked[duplicate_id]
    _check_version(survivor, survivor_version, "survivorVersion")
    _check_version(duplicate, duplicate_version, "duplicateVersion")
    for key in ("email", "phone", "company_id"):
        if getattr(survivor, key) is None and getattr(duplicate, key) is not None:
            setattr(survivor, key, getattr(duplicate, key))
    opted_out = [t for t in (survivor.unsubscribed_at, duplicate.unsubscribed_at) if t]
    survivor.unsubscribed_at = min(opted_out) if opted_out else None
    moved = await _relink_deals(uow, principal, "contact_id", duplicate.id, survivor.id)
    params = {"s": survivor.id, "d": duplicate.id}
    await uow.session.execute(text(
        "UPDATE campaign_enrollments SET contact_id = :s WHERE contact_id = :d"), params)
    now = datetime.now(UTC)
    if survivor.unsubscribed_at is not None:
        await stop_enrollments(uow, where=_CONTACT_ENROLLMENTS, params={"c": survivor.id},
                               reason="unsubscribed", now=now)
    found = await uow.session.execute(_DUPLICATE_ENROLLMENTS, {"c": survivor.id})
    twice: list[uuid.UUID] = list(found.scalars())
    if twice:
        await stop_enrollments(uow, where="id = ANY(:ids)", params={"ids": twice},
                               reason="contact_merged", now=now)
    await uow.session.execute(text(
        "UPDATE contact_merges SET survivor_id = :s WHERE survivor_id = :d"), params)
    await uow.session.execute(text(
        "INSERT INTO contact_merges (tenant_id, merged_id, survivor_id, merged_by) "
        "VALUES (:t, :d, :s, :by)"), {**params, "t": principal.tenant_id,
                                      "by": principal.user_id})
    await uow.session.delete(duplicate)
    _touch(survivor)
    await uow.session.flush()
    await uow.session.refresh(survivor)
    await _gone(uow, principal, "contact.deleted", "Contact", duplicate.id,
                merged_into=survivor.id)
    await _contact_event(uow, principal, "contact.updated", survivor, merged=duplicate.id)
    await audit.record(uow, principal, "contact.merged", target=("Contact", survivor.id),
                       details={"merged_id": str(duplicate.id), "deals_moved": moved,
                                "enrollments_stopped": len(twice)})
    return survivor


async def resolve_merged(uow: UnitOfWork, contact_id: uuid.UUID) -> uuid.UUID:
    """The contact a (possibly merged) id stands for now."""
    found = (await uow.session.execute(text(
        "SELECT survivor_id FROM contact_merges WHERE merged_id = :c"),
        {"c": contact_id})).scalar_one_or_none()
    return found if found is not None else contact_id


async def update_company(*, uow: UnitOfWork, principal: Principal, company_id: uuid.UUID,
                         expected_version: int | None, fields: CompanyFields) -> Company:
    principal.require(Scope.CONTACTS_WRITE)
    company: Company = await _get(uow, Company, company_id, "companyId")
    _check_version(company, expected_version, "expectedVersion")
    changes: dict[str, Any] = {}
    if fields.name is not UNSET:
        changes["name"] = check_name(fields.name or "")
    if fields.domain is not UNSET:
        changes["domain"] = (fields.domain or "").strip().lower() or None
    changed = {k: v for k, v in changes.items() if getattr(company, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(company, key, value)
        _touch(company)
        await uow.session.flush()
        await uow.session.refresh(company)
        await entity_events.append(uow, kind="company.updated", entity_type="Company",
                                   entity_id=company.id, principal=principal,
                                   data={"company": company_data(company),
                                         "changed": sorted(changed)})
    return company


async def _relink_contacts(uow: UnitOfWork, old: uuid.UUID, new: uuid.UUID | None) -> int:
    rows = await uow.session.execute(text(
        "UPDATE contacts SET company_id = :n, version = version + 1, updated_at = now() "
        "WHERE company_id = :o RETURNING id"), {"o": old, "n": new})
    return len(rows.all())


async def delete_company(*, uow: UnitOfWork, principal: Principal, company_id: uuid.UUID,
                         expected_version: int | None) -> uuid.UUID:
    """Remove the company; its contacts and deals stay, without a company."""
    principal.require(Scope.CONTACTS_WRITE)
    company: Company = await _get(uow, Company, company_id, "companyId")
    _check_version(company, expected_version, "expectedVersion")
    await _relink_contacts(uow, company.id, None)
    await _relink_deals(uow, principal, "company_id", company.id, None)
    await uow.session.delete(company)
    await uow.session.flush()
    await _gone(uow, principal, "company.deleted", "Company", company.id)
    return company.id


async def merge_companies(*, uow: UnitOfWork, principal: Principal, survivor_id: uuid.UUID,
                          duplicate_id: uuid.UUID, survivor_version: int | None,
                          duplicate_version: int | None) -> Company:
    """Fold `duplicate_id` into `survivor_id`: its contacts and deals move over."""
    principal.require(Scope.CONTACTS_WRITE)
    if survivor_id == duplicate_id:
        raise ValidationFailed("a company cannot be merged into itself", field="duplicateId")
    first, second = sorted([(survivor_id, "survivorId"), (duplicate_id, "duplicateId")])
    locked = {first[0]: await _get(uow, Company, *first),
              second[0]: await _get(uow, Company, *second)}
    survivor: Company = locked[survivor_id]
    duplicate: Company = locked[duplicate_id]
    _check_version(survivor, survivor_version, "survivorVersion")
    _check_version(duplicate, duplicate_version, "duplicateVersion")
    if survivor.domain is None:
        survivor.domain = duplicate.domain
    await _relink_contacts(uow, duplicate.id, survivor.id)
    moved = await _relink_deals(uow, principal, "company_id", duplicate.id, survivor.id)
    await uow.session.delete(duplicate)
    _touch(survivor)
    await uow.session.flush()
    await uow.session.refresh(survivor)
    await _gone(uow, principal, "company.deleted", "Company", duplicate.id,
                merged_into=survivor.id)
    await entity_events.append(uow, kind="company.updated", entity_type="Company",
                               entity_id=survivor.id, principal=principal,
                               data={"company": company_data(survivor),
                                     "merged": entity_events.gid("Company", duplicate.id)})
    await audit.record(uow, principal, "company.merged", target=("Company", survivor.id),
                       details={"merged_id": str(duplicate.id), "deals_moved": moved})
    return survivor
