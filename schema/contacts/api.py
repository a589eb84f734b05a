"""Queries and mutations of companies and contacts."""

from __future__ import annotations

import strawberry

from saas.contacts import lifecycle, models
from saas.contacts import search as search_
from saas.contacts import service as contacts
from saas.errors import LimitExceeded
from schema.contacts.inputs import (
    CreateCompanyInput,
    CreateContactInput,
    DeleteCompanyInput,
    DeleteContactInput,
    MergeCompaniesInput,
    MergeContactsInput,
    UpdateCompanyInput,
    UpdateContactInput,
)
from schema.contacts.types import (
    Company,
    CompanyConnection,
    CompanyEdge,
    CompanyPayload,
    Contact,
    ContactConnection,
    ContactEdge,
    ContactPayload,
    DeleteCompanyPayload,
    DeleteContactPayload,
)
from schema.context import Info
from schema.mutations import payload
from schema.nodes import PageInfo, decode_id, gid
from tenants.scopes import Scope

MAX_LIST = 500


@strawberry.type
class ContactsQuery:
    @strawberry.field(description="Contacts by name, filtered, with keyset pagination.")
    async def contacts_connection(self, info: Info, first: int = 50, after: str | None = None,
                                  search: str | None = None,
                                  company_id: strawberry.ID | None = None) -> ContactConnection:
        info.context.require(Scope.CONTACTS_READ)
        company = decode_id(company_id, "Company", field="companyId") if company_id else None
        async with info.context.uow() as uow:
            found = await search_.page(uow=uow, model=models.Contact, first=first, after=after,
                                       search=search, company_id=company)
        return ContactConnection(
            edges=[ContactEdge(cursor=c, node=Contact.from_model(r))
                   for r, c in zip(found.rows, found.cursors, strict=True)],
            page_info=PageInfo(has_next_page=found.has_next,
                               end_cursor=found.cursors[-1] if found.cursors else None),
            total_count=found.total)

    @strawberry.field(description="Companies by name, filtered, with keyset pagination.")
    async def companies_connection(self, info: Info, first: int = 50, after: str | None = None,
                                   search: str | None = None) -> CompanyConnection:
        info.context.require(Scope.CONTACTS_READ)
        async with info.context.uow() as uow:
            found = await search_.page(uow=uow, model=models.Company, first=first, after=after,
                                       search=search)
        return CompanyConnection(
            edges=[CompanyEdge(cursor=c, node=Company.from_model(r))
                   for r, c in zip(found.rows, found.cursors, strict=True)],
            page_info=PageInfo(has_next_page=found.has_next,
                               end_cursor=found.cursors[-1] if found.cursors else None),
            total_count=found.total)

    @strawberry.field(deprecation_reason="Use companiesConnection: filters and pagination.")
    async def companies(self, info: Info, first: int = 100) -> list[Company]:
        info.context.require(Scope.CONTACTS_READ)
        if not 0 < first <= MAX_LIST:
            raise LimitExceeded(f"first must be 1-{MAX_LIST}", field="first")
        async with info.context.uow() as uow:
            return [Company.from_model(c) for c in
                    await contacts.list_companies(uow=uow, limit=first)]

    @strawberry.field(deprecation_reason="Use contactsConnection: filters and pagination.")
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

    @strawberry.mutation(description="Change a contact's name, e-mail, phone or company.")
    async def update_contact(self, info: Info, input: UpdateContactInput) -> ContactPayload:
        principal = info.context.require_principal()

        async def act() -> ContactPayload:
            principal.require(Scope.CONTACTS_WRITE)
            contact_id = decode_id(input.contact_id, "Contact", field="contactId")
            fields = input.fields()
            async with info.context.uow() as uow:
                contact = await lifecycle.update_contact(
                    uow=uow, principal=principal, contact_id=contact_id,
                    expected_version=input.expected_version, fields=fields)
            return ContactPayload(contact=Contact.from_model(contact))

        return await payload(ContactPayload, act)

    @strawberry.mutation(description="Delete a contact; its deals stay, without a contact.")
    async def delete_contact(self, info: Info,
                             input: DeleteContactInput) -> DeleteContactPayload:
        principal = info.context.require_principal()

        async def act() -> DeleteContactPayload:
            principal.require(Scope.CONTACTS_WRITE)
            contact_id = decode_id(input.contact_id, "Contact", field="contactId")
            async with info.context.uow() as uow:
                deleted = await lifecycle.delete_contact(
                    uow=uow, principal=principal, contact_id=contact_id,
                    expected_version=input.expected_version)
            return DeleteContactPayload(deleted_contact_id=gid("Contact", deleted))

        return await payload(DeleteContactPayload, act)

    @strawberry.mutation(description="Merge a duplicate contact into the survivor.")
    async def merge_contacts(self, info: Info, input: MergeContactsInput) -> ContactPayload:
        principal = info.context.require_principal()

        async def act() -> ContactPayload:
            principal.require(Scope.CONTACTS_WRITE)
            survivor = decode_id(input.survivor_id, "Contact", field="survivorId")
            duplicate = decode_id(input.duplicate_id, "Contact", field="duplicateId")
            async with info.context.uow() as uow:
                contact = await lifecycle.merge_contacts(
                    uow=uow, principal=principal, survivor_id=survivor, duplicate_id=duplicate,
                    survivor_version=input.survivor_version,
                    duplicate_version=input.duplicate_version)
            return ContactPayload(contact=Contact.from_model(contact))

        return await payload(ContactPayload, act)

    @strawberry.mutation(description="Change a company's name or domain.")
    async def update_company(self, info: Info, input: UpdateCompanyInput) -> CompanyPayload:
        principal = info.context.require_principal()

        async def act() -> CompanyPayload:
            principal.require(Scope.CONTACTS_WRITE)
            company_id = decode_id(input.company_id, "Company", field="companyId")
            async with info.context.uow() as uow:
                company = await lifecycle.update_company(
                    uow=uow, principal=principal, company_id=company_id,
                    expected_version=input.expected_version, fields=input.fields())
            return CompanyPayload(company=Company.from_model(company))

        return await payload(CompanyPayload, act)

    @strawberry.mutation(description="Delete a company; its contacts and deals stay.")
    async def delete_company(self, info: Info,
                             input: DeleteCompanyInput) -> DeleteCompanyPayload:
        principal = info.context.require_principal()

        async def act() -> DeleteCompanyPayload:
            principal.require(Scope.CONTACTS_WRITE)
            company_id = decode_id(input.company_id, "Company", field="companyId")
            async with info.context.uow() as uow:
                deleted = await lifecycle.delete_company(
                    uow=uow, principal=principal, company_id=company_id,
                    expected_version=input.expected_version)
            return DeleteCompanyPayload(deleted_company_id=gid("Company", deleted))

        return await payload(DeleteCompanyPayload, act)

    @strawberry.mutation(description="Merge a duplicate company into the survivor.")
    async def merge_companies(self, info: Info, input: MergeCompaniesInput) -> CompanyPayload:
        principal = info.context.require_principal()

        async def act() -> CompanyPayload:
            principal.require(Scope.CONTACTS_WRITE)
            survivor = decode_id(input.survivor_id, "Company", field="survivorId")
            duplicate = decode_id(input.duplicate_id, "Company", field="duplicateId")
            async with info.context.uow() as uow:
                company = await lifecycle.merge_companies(
                    uow=uow, principal=principal, survivor_id=survivor, duplicate_id=duplicate,
                    survivor_version=input.survivor_version,
                    duplicate_version=input.duplicate_version)
            return CompanyPayload(company=Company.from_model(company))

        return await payload(CompanyPayload, act)
