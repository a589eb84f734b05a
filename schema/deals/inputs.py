"""Input types of the deals API and their conversion to service arguments."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from saas.deals.lifecycle import BulkChange
from saas.deals.search import DealFilter
from saas.deals.service import DealFields
from schema.deals.types import ActivityKind, Temperature
from schema.nodes import decode_id


@strawberry.enum
class DealOrder(enum.Enum):
    UPDATED_AT_DESC = "UPDATED_AT_DESC"
    CREATED_AT_DESC = "CREATED_AT_DESC"
    AMOUNT_DESC = "AMOUNT_DESC"
    EXPECTED_CLOSE_ASC = "EXPECTED_CLOSE_ASC"


@strawberry.enum(description="Which deals a list shows: archived deals are hidden by default.")
class ArchivedFilter(enum.Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    ALL = "all"


@strawberry.input
class DealFilterInput:
    pipeline_id: strawberry.ID | None = None
    stage_ids: list[strawberry.ID] | None = None
    owner_ids: list[strawberry.ID] | None = None
    team_id: strawberry.ID | None = None
    temperatures: list[Temperature] | None = None
    labels: list[str] | None = strawberry.field(
        default=None, description="Deals with all of them.")
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    expected_close_from: date | None = None
    expected_close_to: date | None = None
    search: str | None = strawberry.field(
        default=None, description="Text in the title, the contact's name/email or company name.")
    archived: ArchivedFilter = ArchivedFilter.ACTIVE
    contact_ids: list[strawberry.ID] | None = None
    company_ids: list[strawberry.ID] | None = None

    def to_filter(self) -> DealFilter:
        return DealFilter(
            pipeline_id=decode_id(self.pipeline_id, "Pipeline",
                                  field="filter.pipelineId") if self.pipeline_id else None,
            stage_ids=[decode_id(i, "Stage", field="filter.stageIds")
                       for i in self.stage_ids or []],
            owner_ids=[decode_id(i, "User", field="filter.ownerIds")
                       for i in self.owner_ids or []],
            team_id=decode_id(self.team_id, "Team", field="filter.teamId")
            if self.team_id else None,
            temperatures=[t.value for t in self.temperatures or []],
            labels=list(self.labels or []),
            amount_min=self.amount_min, amount_max=self.amount_max,
            close_from=self.expected_close_from, close_to=self.expected_close_to,
            text=self.search, archived=self.archived.value,
            contact_ids=[decode_id(i, "Contact", field="filter.contactIds")
                         for i in self.contact_ids or []],
            company_ids=[decode_id(i, "Company", field="filter.companyIds")
                         for i in self.company_ids or []],
        )


def _fields(source: object) -> DealFields:
    """Copy given (non-UNSET) input fields into DealFields, decoding ids."""
    f = DealFields()
    for name in ("title", "amount", "currency", "expected_close_date", "labels",
                 "custom_fields", "probability_override"):
        value = getattr(source, name, strawberry.UNSET)
        if value is not strawberry.UNSET:
            setattr(f, name, value)
    temperature = getattr(source, "temperature", strawberry.UNSET)
    if temperature is not strawberry.UNSET:
        f.temperature = temperature.value if temperature is not None else None
    for name, type_name, field in (("owner_id", "User", "ownerId"),
                                   ("contact_id", "Contact", "contactId"),
                                   ("company_id", "Company", "companyId")):
        value = getattr(source, name, strawberry.UNSET)
        if value is not strawberry.UNSET:
            setattr(f, name, decode_id(value, type_name, field=field) if value else None)
    return f


@strawberry.input
class CreateDealInput:
    pipeline_id: strawberry.ID
    title: str
    stage_id: strawberry.ID | None = None
    amount: Decimal | None = strawberry.UNSET
    currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="ISO 4217; default: the tenant's base currency.")
    owner_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Default: the caller.")
    contact_id: strawberry.ID | None = strawberry.UNSET
    company_id: strawberry.ID | None = strawberry.UNSET
    expected_close_date: date | None = strawberry.UNSET
    temperature: Temperature | None = strawberry.UNSET
    labels: list[str] | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.UNSET
    probability_override: Decimal | None = strawberry.UNSET

    def fields(self) -> DealFields:
        return _fields(self)


@strawberry.input
class UpdateDealInput:
    deal_id: strawberry.ID
    expected_version: int
    title: str | None = strawberry.UNSET
    amount: Decimal | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
    contact_id: strawberry.ID | None = strawberry.UNSET
    company_id: strawberry.ID | None = strawberry.UNSET
    expected_close_date: date | None = strawberry.UNSET
    temperature: Temperature | None = strawberry.UNSET
    labels: list[str] | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Merged into the current values; null removes.")
    probability_override: Decimal | None = strawberry.UNSET

    def fields(self) -> DealFields:
        return _fields(self)


@strawberry.input
class MoveDealInput:
    deal_id: strawberry.ID
    to_stage_id: strawberry.ID
    expected_version: int
    lost_reason: str | None = None


@strawberry.input
class StageMappingInput:
    from_stage_id: strawberry.ID
    to_stage_id: strawberry.ID


@strawberry.input
class TransferDealInput:
    deal_id: strawberry.ID
    to_pipeline_id: strawberry.ID
    expected_version: int
    to_stage_id: strawberry.ID | None = None
    stage_mapping: list[StageMappingInput] | None = None
    lost_reason: str | None = None


@strawberry.input
class CreateActivityInput:
    deal_id: strawberry.ID
    kind: ActivityKind
    subject: str
    note: str | None = None
    due_at: datetime | None = None
    done_at: datetime | None = None


@strawberry.input
class CompleteActivityInput:
    activity_id: strawberry.ID


@strawberry.input
class DefineCustomFieldInput:
    key: str
    label: str
    type: str = strawberry.field(description="text, number, boolean, date or choice")
    choices: list[str] | None = None
    required: bool = False



@strawberry.input
class ArchiveDealInput:
    deal_id: strawberry.ID
    expected_version: int | None = strawberry.field(
        default=None, description="If given, the deal must still be at this version.")


@strawberry.input
class RestoreDealInput:
    deal_id: strawberry.ID
    expected_version: int | None = None
    stage_id: strawberry.ID | None = strawberry.field(
        default=None, description="Where to restore it when its stage was archived meanwhile.")


@strawberry.input
class DeleteDealInput:
    deal_id: strawberry.ID


@strawberry.input(description="Set the same fields on many deals at once (all or nothing).")
class BulkUpdateDealsInput:
    deal_ids: list[strawberry.ID] = strawberry.field(description="At most 500.")
    owner_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null leaves the deals unowned.")
    temperature: Temperature | None = strawberry.UNSET
    add_labels: list[str] | None = None
    remove_labels: list[str] | None = None

    def change(self) -> BulkChange:
        change = BulkChange(add_labels=list(self.add_labels or []),
                            remove_labels=list(self.remove_labels or []))
        if self.owner_id is not strawberry.UNSET:
            change.owner_id = decode_id(self.owner_id, "User", field="ownerId") \
                if self.owner_id else None
        if self.temperature is not strawberry.UNSET:
            change.temperature = self.temperature.value if self.temperature else None
        return change
