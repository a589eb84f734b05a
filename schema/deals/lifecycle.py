"""Mutations of a deal's lifecycle (archive, restore, permanent delete, bulk update) and of
its activities after creation (update, delete)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from saas.deals import activities, lifecycle
from saas.errors import LimitExceeded
from schema.context import Info
from schema.deals.inputs import (
    ArchiveDealInput,
    BulkUpdateDealsInput,
    DeleteDealInput,
    RestoreDealInput,
)
from schema.deals.types import (
    Activity,
    ActivityKind,
    ActivityPayload,
    BulkUpdateDealsPayload,
    Deal,
    DealPayload,
    DeleteDealPayload,
)
from schema.mutations import DeletedPayload, payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.type
class DealLifecycleMutation:
    @strawberry.mutation(description="Archive a deal (soft delete): hidden from boards, lists, "
                                     "analytics, forecasts and campaigns; history kept; "
                                     "restorable. Live boards get a DealDeleted event.")
    async def archive_deal(self, info: Info, input: ArchiveDealInput) -> DealPayload:
        principal = info.context.require_principal()

        async def act() -> DealPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            async with info.context.uow() as uow:
                deal = await lifecycle.archive(uow=uow, principal=principal, deal_id=deal_id,
                                               expected_version=input.expected_version)
            return DealPayload(deal=Deal.from_model(deal))

        return await payload(DealPayload, act)

    @strawberry.mutation(description="Bring an archived deal back (a DealRestored event).")
    async def restore_deal(self, info: Info, input: RestoreDealInput) -> DealPayload:
        principal = info.context.require_principal()

        async def act() -> DealPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            stage_id = decode_id(input.stage_id, "Stage", field="stageId") \
                if input.stage_id else None
            async with info.context.uow() as uow:
                deal = await lifecycle.restore(uow=uow, principal=principal, deal_id=deal_id,
                                               expected_version=input.expected_version,
                                               stage_id=stage_id)
            return DealPayload(deal=Deal.from_model(deal))

        return await payload(DealPayload, act)

    @strawberry.mutation(description="Delete a deal for good with its history, activities and "
                                     "campaign enrollments (privacy:admin; audited). Live "
                                     "boards get a DealDeleted event with permanent: true.")
    async def delete_deal(self, info: Info, input: DeleteDealInput) -> DeleteDealPayload:
        principal = info.context.require_principal()

        async def act() -> DeleteDealPayload:
            principal.require(Scope.PRIVACY_ADMIN)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            async with info.context.uow() as uow:
                deleted = await lifecycle.delete_permanently(uow=uow, principal=principal,
                                                             deal_id=deal_id)
            return DeleteDealPayload(deleted_deal_id=gid("Deal", deleted))

        return await payload(DeleteDealPayload, act)

    @strawberry.mutation(description="Set the owner, temperature or labels of up to 500 deals "
                                     "in one transaction (all or nothing); each deal gets an "
                                     "updated event with its field history.")
    async def bulk_update_deals(self, info: Info,
                                input: BulkUpdateDealsInput) -> BulkUpdateDealsPayload:
        principal = info.context.require_principal()

        async def act() -> BulkUpdateDealsPayload:
            principal.require(Scope.DEALS_WRITE)
            if len(input.deal_ids) > lifecycle.MAX_BULK:
                raise LimitExceeded(f"at most {lifecycle.MAX_BULK} deals per bulk update",
                                    field="dealIds")
            ids = [decode_id(i, "Deal", field="dealIds") for i in input.deal_ids]
            change = input.change()
            async with info.context.uow() as uow:
                deals = await lifecycle.bulk_update(uow=uow, principal=principal, deal_ids=ids,
                                                    change=change)
            return BulkUpdateDealsPayload(deals=[Deal.from_model(d) for d in deals])

        return await payload(BulkUpdateDealsPayload, act)


@strawberry.input(description="Only the fields given change; null clears note, dueAt, doneAt.")
class UpdateActivityInput:
    activity_id: strawberry.ID
    kind: ActivityKind | None = strawberry.UNSET
    subject: str | None = strawberry.UNSET
    note: str | None = strawberry.UNSET
    due_at: datetime | None = strawberry.UNSET
    done_at: datetime | None = strawberry.UNSET

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("subject", "note", "due_at", "done_at"):
            value = getattr(self, name)
            if value is not strawberry.UNSET:
                out[name] = value
        if self.kind is not strawberry.UNSET:
            out["kind"] = self.kind.value if self.kind else None
        return out


@strawberry.input
class DeleteActivityInput:
    activity_id: strawberry.ID


@strawberry.type
class ActivityLifecycleMutation:
    @strawberry.mutation
    async def update_activity(self, info: Info, input: UpdateActivityInput) -> ActivityPayload:
        principal = info.context.require_principal()

        async def act() -> ActivityPayload:
            principal.require(Scope.DEALS_WRITE)
            activity_id = decode_id(input.activity_id, "Activity", field="activityId")
            async with info.context.uow() as uow:
                activity = await activities.update(uow=uow, principal=principal,
                                                   activity_id=activity_id,
                                                   fields=input.fields())
            return ActivityPayload(activity=Activity.from_model(activity))

        return await payload(ActivityPayload, act)

    @strawberry.mutation
    async def delete_activity(self, info: Info, input: DeleteActivityInput) -> DeletedPayload:
        principal = info.context.require_principal()

        async def act() -> DeletedPayload:
            principal.require(Scope.DEALS_WRITE)
            activity_id = decode_id(input.activity_id, "Activity", field="activityId")
            async with info.context.uow() as uow:
                gone = await activities.delete(uow=uow, principal=principal,
                                               activity_id=activity_id)
            return DeletedPayload(deleted_id=gid("Activity", gone))

        return await payload(DeletedPayload, act)
