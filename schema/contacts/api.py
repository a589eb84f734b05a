"""Types, queries and mutations of companies and contacts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import strawberry
from strawberry import relay

from saas.contacts import models
from saas.contacts import service as contacts
from saas.errors import LimitExceeded
from schema.context import Info
from schema.errors import UserError
from schema.loaders import by_id
from schema.mutations import payload
from schema.nodes import decode_id
from tenants.scopes import Scope

MAX_LIST = 500


@strawberry.type
class Company(relay.Node):
    id: relay.NodeID[str]
    name: str
    domain: str | None

    @classmethod
    def from_model(cls, m: models.Company) -> Company:
        return cls(id=str(m.id), name=m.name, domain=m.domain)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Company | None]:
        rows = await by_id(info, models.Company).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class Contact(relay.Node):
    id: relay.NodeID[str]
    name: str
    email: str | None
    phone: str | None
    company_id: strawberry.Private[uuid.UUID | None]
    unsubscribed: bool

    @strawberry.field
    async def company(self, info: Info) -> Company | None:
        if self.company_id is None:
            return None
        row = await by_id(info, models.Company).load(self.company_id)
        return Company.from_model(row) if row else None

    @classmethod
    def from_model(cls, m: models.Contact) -> Contact:
        return cls(id=str(m.id), name=m.name, email=m.email, phone=m.phone,
                   company_id=m.company_id, unsubscribed=m.unsubscribed_at is not None)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Contact | None]:
        rows = await by_id(info, models.Contact).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class CompanyPayload:
    company: Company | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ContactPayload:
    contact: Contact | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateCompanyInput:
    name: str
    domain: str | None = None


@strawberry.input
class CreateContactInput:
    name: str
    email: str | None = None
    phone: str | None = None
    company_id: strawberry.ID | None = None


@strawberry.type
class ContactsQuery:
    @strawberry.field
    async def companies(self, info: Info, first: int = 100) -> list[Company]:
        info.context.require(Scope.CONTACTS_READ)
        if not 0 < first <= MAX_LIST:
            raise LimitExceeded(f"first must be 1-{MAX_LIST}", field="first")
        async with info.context.uow() as uow:
            return [Company.from_model(c) for c in
                    await contacts.list_companies(uow=uow, limit=first)]

    @strawberry.field
    async def contacts(self, info: Info, first: int = 100) -> list[Contact]:
        info.context.require(Scope.CONTACTS_READ)
        if not 0 < first <= MAX_LIST:
            raise LimitExceeded(f"first must be 1-{MAX_LIST}", field="first")
        async with info.context.uow() as uow:
            return [Contact.from_model(c) for c in
                    await contacts.list_contacts(uow=uow, limit=first)]


@strawberry.type
class ContactsMutation:
    @strawberry.mutation
    async def create_company(self, info: Info, input: CreateCompanyInput) -> CompanyPayload:
        principal = info.context.require_principal()

        async def act() -> CompanyPayload:
            principal.require(Scope.CONTACTS_WRITE)
            async with info.context.uow() as uow:
                company = await contacts.create_company(uow=uow, principal=principal,
                                                        name=input.name, domain=input.domain)
            return CompanyPayload(company=Company.from_model(company))

        return await payload(CompanyPayload, act)

    @strawberry.mutation
    async def create_contact(self, info: Info, input: CreateContactInput) -> ContactPayload:
        principal = info.context.require_principal()

        async def act() -> ContactPayload:
            principal.require(Scope.CONTACTS_WRITE)
            company_id = (decode_id(input.company_id, "Company", field="companyId")
                          if input.company_id else None)
            async with info.context.uow() as uow:
                contact = await contacts.create_contact(
                    uow=uow, principal=principal, name=input.name, email=input.email,
                    phone=input.phone, company_id=company_id)
            return ContactPayload(contact=Contact.from_model(contact))

        return await payload(ContactPayload, act)
