"""Companies and contacts: minimal but real."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from saas import entity_events
from saas.contacts.models import Company, Contact
from saas.db import UnitOfWork
from saas.errors import NotFound, ValidationFailed
from tenants.principal import Principal
from tenants.scopes import Scope
from tenants.service import validate_email


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("name must be 1-200 characters", field="name")
    return name


def check_phone(phone: str) -> str:
    if len(phone) > 40 or not any(ch.isdigit() for ch in phone):
        raise ValidationFailed("not a valid phone number", field="phone")
    return phone


def company_data(company: Company) -> dict[str, object]:
    """A company as webhook payloads show it."""
    return {"id": entity_events.gid("Company", company.id), "name": company.name,
            "domain": company.domain}


def contact_data(contact: Contact) -> dict[str, object]:
    """A contact as webhook payloads show it."""
    return {"id": entity_events.gid("Contact", contact.id), "name": contact.name,
            "email": contact.email, "phone": contact.phone,
            "companyId": entity_events.gid("Company", contact.company_id)}


async def create_company(
    *, uow: UnitOfWork, principal: Principal, name: str, domain: str | None
) -> Company:
    principal.require(Scope.CONTACTS_WRITE)
    company = Company(tenant_id=principal.tenant_id, id=uuid.uuid4(), name=check_name(name),
                      domain=(domain or "").strip().lower() or None)
    uow.session.add(company)
    await uow.session.flush()
    await entity_events.append(uow, kind="company.created", entity_type="Company",
                               entity_id=company.id, principal=principal,
                               data={"company": company_data(company)})
    return company


async def create_contact(
    *, uow: UnitOfWork, principal: Principal, name: str, email: str | None, phone: str | None,
    company_id: uuid.UUID | None,
) -> Contact:
    principal.require(Scope.CONTACTS_WRITE)
    if company_id is not None and await uow.session.get(
            Company, (principal.tenant_id, company_id)) is None:
        raise NotFound("company not found", field="companyId")
    if phone is not None:
        check_phone(phone)
    contact = Contact(tenant_id=principal.tenant_id, id=uuid.uuid4(), name=check_name(name),
                      email=validate_email(email) if email else None, phone=phone,
                      company_id=company_id)
    uow.session.add(contact)
    await uow.session.flush()
    await entity_events.append(uow, kind="contact.created", entity_type="Contact",
                               entity_id=contact.id, principal=principal,
                               data={"contact": contact_data(contact)})
    return contact


async def list_companies(*, uow: UnitOfWork, limit: int) -> list[Company]:
    rows = await uow.session.execute(select(Company).order_by(Company.name).limit(limit))
    return list(rows.scalars())


async def list_contacts(*, uow: UnitOfWork, limit: int) -> list[Contact]:
    rows = await uow.session.execute(select(Contact).order_by(Contact.name).limit(limit))
    return list(rows.scalars())
