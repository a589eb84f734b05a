"""GraphQL types of companies and contacts, and their payloads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import strawberry
from strawberry import relay

from saas.contacts import models
from schema.context import Info
from schema.errors import UserError
from schema.loaders import by_id
from schema.nodes import PageInfo


@strawberry.type
class Company(relay.Node):
    id: relay.NodeID[str]
    name: str
    domain: str | None
    version: int = strawberry.field(description="Pass it as expectedVersion to update.")

    @classmethod
    def from_model(cls, m: models.Company) -> Company:
        return cls(id=str(m.id), name=m.name, domain=m.domain, version=m.version)

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
    version_: strawberry.Private[int | None] = None

    @strawberry.field(description="Pass it as expectedVersion to update.")
    def version(self, info: Info) -> int:
        if self.version_ is not None:
            return self.version_
        return self._version(info)  # type: ignore[return-value]  # board cards: not loaded

    async def _version(self, info: Info) -> int:
        row = await by_id(info, models.Contact).load(uuid.UUID(self.id))
        return int(row.version) if row else 0

    @strawberry.field
    async def company(self, info: Info) -> Company | None:
        if self.company_id is None:
            return None
        row = await by_id(info, models.Company).load(self.company_id)
        return Company.from_model(row) if row else None

    @classmethod
    def from_model(cls, m: models.Contact) -> Contact:
        return cls(id=str(m.id), name=m.name, email=m.email, phone=m.phone,
                   company_id=m.company_id, unsubscribed=m.unsubscribed_at is not None,
                   version_=m.version)

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


@strawberry.type
class DeleteContactPayload:
    deleted_contact_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteCompanyPayload:
    deleted_company_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ContactEdge:
    cursor: str
    node: Contact


@strawberry.type
class ContactConnection:
    edges: list[ContactEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class CompanyEdge:
    cursor: str
    node: Company


@strawberry.type
class CompanyConnection:
    edges: list[CompanyEdge]
    page_info: PageInfo
    total_count: int
