"""Input types of the contacts API and their conversion to service arguments."""

from __future__ import annotations

import strawberry

from saas.contacts.lifecycle import CompanyFields, ContactFields
from schema.nodes import decode_id


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


@strawberry.input(description="Only the fields given change; null clears email, phone, company.")
class UpdateContactInput:
    contact_id: strawberry.ID
    expected_version: int
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company_id: strawberry.ID | None = strawberry.UNSET

    def fields(self) -> ContactFields:
        f = ContactFields()
        for name in ("name", "email", "phone"):
            value = getattr(self, name)
            if value is not strawberry.UNSET:
                setattr(f, name, value)
        if self.company_id is not strawberry.UNSET:
            f.company_id = decode_id(self.company_id, "Company", field="companyId") \
                if self.company_id else None
        return f


@strawberry.input
class UpdateCompanyInput:
    company_id: strawberry.ID
    expected_version: int
    name: str | None = strawberry.UNSET
    domain: str | None = strawberry.UNSET

    def fields(self) -> CompanyFields:
        f = CompanyFields()
        if self.name is not strawberry.UNSET:
            f.name = self.name
        if self.domain is not strawberry.UNSET:
            f.domain = self.domain
        return f


@strawberry.input(description="Deleting a contact keeps its deals, without a contact.")
class DeleteContactInput:
    contact_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input(description="Deleting a company keeps its contacts and deals, without it.")
class DeleteCompanyInput:
    company_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input(description="Fold the duplicate into the survivor: deals, activities (with "
                              "the deals) and campaign enrollments move; the duplicate goes.")
class MergeContactsInput:
    survivor_id: strawberry.ID
    duplicate_id: strawberry.ID
    survivor_version: int | None = None
    duplicate_version: int | None = None


@strawberry.input(description="Fold the duplicate company into the survivor: its contacts and "
                              "deals move; the duplicate goes.")
class MergeCompaniesInput:
    survivor_id: strawberry.ID
    duplicate_id: strawberry.ID
    survivor_version: int | None = None
    duplicate_version: int | None = None
