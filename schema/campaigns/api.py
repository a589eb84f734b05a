"""Queries and mutations of campaigns, enrollments and sends (types in types.py, inputs in
inputs.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from saas.campaigns import service as campaigns
from saas.errors import LimitExceeded, NotFound
from schema.campaigns.inputs import (
    CampaignIdInput,
    CreateCampaignInput,
    MarkRepliedInput,
    UpdateCampaignInput,
    _spec,
)
from schema.campaigns.types import (
    Campaign,
    CampaignEnrollment,
    CampaignPayload,
    EnrollmentStatus,
    MarkRepliedPayload,
    _enrollments,
)
from schema.context import Info
from schema.mutations import payload
from schema.nodes import decode_id
from tenants.scopes import Scope


@strawberry.type
class CampaignsQuery:
    @strawberry.field(description="The tenant's campaigns, by name.")
    async def campaigns(self, info: Info, first: int = 100) -> list[Campaign]:
        info.context.require(Scope.CAMPAIGNS_READ)
        if not 0 < first <= campaigns.MAX_LIST:
            raise LimitExceeded(f"first must be 1-{campaigns.MAX_LIST}", field="first")
        async with info.context.uow() as uow:
            views = await campaigns.list_campaigns(uow=uow, limit=first)
        return [Campaign.from_view(v) for v in views]

    @strawberry.field(description="One campaign (null when unknown or another tenant's).")
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign | None:
        info.context.require(Scope.CAMPAIGNS_READ)
        try:
            cid = decode_id(id, "Campaign", field="id")
        except NotFound:
            return None
        return (await Campaign.resolve_nodes(info=info, node_ids=[str(cid)]))[0]

    @strawberry.field(description="Enrollments of a deal and/or a campaign, newest first, "
                                  "each with its sends.")
    async def campaign_enrollments(
        self, info: Info, deal_id: strawberry.ID | None = None,
        campaign_id: strawberry.ID | None = None, status: EnrollmentStatus | None = None,
        first: int = 100,
    ) -> list[CampaignEnrollment]:
        info.context.require(Scope.CAMPAIGNS_READ)
        did = decode_id(deal_id, "Deal", field="dealId") if deal_id else None
        cid = decode_id(campaign_id, "Campaign", field="campaignId") if campaign_id else None
        return await _enrollments(info, deal_id=did, campaign_id=cid, status=status, first=first)


@strawberry.type
class CampaignsMutation:
    @strawberry.mutation(description="Define a campaign; every template field is checked now.")
    async def create_campaign(self, info: Info, input: CreateCampaignInput) -> CampaignPayload:
        principal = info.context.require_principal()

        async def act() -> CampaignPayload:
            principal.require(Scope.CAMPAIGNS_WRITE)
            spec = _spec(input)
            async with info.context.uow() as uow:
                view = await campaigns.create(uow=uow, principal=principal, spec=spec)
            return CampaignPayload(campaign=Campaign.from_view(view))

        return await payload(CampaignPayload, act)

    @strawberry.mutation(description="Change a campaign; omitted fields stay as they are.")
    async def update_campaign(self, info: Info, input: UpdateCampaignInput) -> CampaignPayload:
        principal = info.context.require_principal()

        async def act() -> CampaignPayload:
            principal.require(Scope.CAMPAIGNS_WRITE)
            cid = decode_id(input.campaign_id, "Campaign", field="campaignId")
            spec = _spec(input)
            async with info.context.uow() as uow:
                view = await campaigns.update_campaign(
                    uow=uow, principal=principal, campaign_id=cid,
                    expected_version=input.expected_version, spec=spec)
            return CampaignPayload(campaign=Campaign.from_view(view))

        return await payload(CampaignPayload, act)

    @strawberry.mutation(description="Pause: every active enrollment leaves; nothing is sent.")
    async def pause_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await _set_status(info, input, "paused")

    @strawberry.mutation(description="Resume: new triggers enroll again.")
    async def resume_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await _set_status(info, input, "active")

    @strawberry.mutation(description="The contact replied: the deal leaves its campaigns.")
    async def mark_replied(self, info: Info, input: MarkRepliedInput) -> MarkRepliedPayload:
        principal = info.context.require_principal()

        async def act() -> MarkRepliedPayload:
            principal.require(Scope.DEALS_WRITE)  # the deal's row rules apply (service)
            did = decode_id(input.deal_id, "Deal", field="dealId")
            cid = (decode_id(input.campaign_id, "Campaign", field="campaignId")
                   if input.campaign_id else None)
            async with info.context.uow() as uow:
                stopped = await campaigns.mark_replied(
                    uow=uow, principal=principal, deal_id=did, campaign_id=cid,
                    now=datetime.now(UTC))
                sends = await campaigns.sends(uow=uow, enrollment_ids=[e.id for e in stopped])
            return MarkRepliedPayload(stopped=[
                CampaignEnrollment.from_model(e, [s for s in sends if s.enrollment_id == e.id])
                for e in stopped])

        return await payload(MarkRepliedPayload, act)


async def _set_status(info: Info, input: CampaignIdInput, status: str) -> CampaignPayload:
    principal = info.context.require_principal()

    async def act() -> CampaignPayload:
        principal.require(Scope.CAMPAIGNS_WRITE)
        cid = decode_id(input.campaign_id, "Campaign", field="campaignId")
        async with info.context.uow() as uow:
            view = await campaigns.set_status(uow=uow, principal=principal, campaign_id=cid,
                                              status=status, now=datetime.now(UTC))
        return CampaignPayload(campaign=Campaign.from_view(view))

    return await payload(CampaignPayload, act)
