"""Erase and export a person's personal data (privacy:admin; both audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from saas.privacy import erasure, export
from schema.context import Info
from schema.errors import UserError
from schema.mutations import payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.type(description="Everything stored about one person (docs/privacy.md).")
class PersonalDataExport:
    contact_id: strawberry.ID
    exported_at: datetime
    data: JSON = strawberry.field(description="contact, deals (with history and activities), "
                                              "campaign_enrollments, campaign_messages.")


@strawberry.input
class EraseContactInput:
    contact_id: strawberry.ID


@strawberry.type
class EraseContactPayload:
    erased_contact_id: strawberry.ID | None = None
    deals_unlinked: int = 0
    messages_redacted: int = 0
    values_redacted: int = strawberry.field(
        default=0, description="Other stored values that named the person, now '[erased]'.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PrivacyQuery:
    @strawberry.field(description="Everything stored about a contact, as JSON (audited).")
    async def export_personal_data(self, info: Info,
                                   contact_id: strawberry.ID) -> PersonalDataExport:
        principal = info.context.require(Scope.PRIVACY_ADMIN)
        cid = decode_id(contact_id, "Contact", field="contactId")
        async with info.context.uow() as uow:
            data = await export.export_contact(uow=uow, principal=principal, contact_id=cid)
        return PersonalDataExport(contact_id=contact_id, exported_at=datetime.now(UTC),
                                  data=cast(JSON, data))


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(description="Remove a person's personal data everywhere it is stored; "
                                      "their deals stay, anonymised (audited).")
    async def erase_contact(self, info: Info, input: EraseContactInput) -> EraseContactPayload:
        principal = info.context.require_principal()

        async def act() -> EraseContactPayload:
            principal.require(Scope.PRIVACY_ADMIN)
            cid = decode_id(input.contact_id, "Contact", field="contactId")
            async with info.context.uow() as uow:
                done = await erasure.erase_contact(uow=uow, principal=principal, contact_id=cid)
            return EraseContactPayload(
                erased_contact_id=gid("Contact", done.contact_id),
                deals_unlinked=done.deals_unlinked, messages_redacted=done.sends_redacted,
                values_redacted=done.values_redacted)

        return await payload(EraseContactPayload, act)
