"""Campaign mutations at the end of its life: archive, delete when it never sent."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from saas.campaigns import lifecycle
from schema.campaigns.types import Campaign, CampaignPayload
from schema.context import Info
from schema.mutations import DeletedPayload, payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.input
class CampaignRefInput:
    campaign_id: strawberry.ID


@strawberry.type
class CampaignLifecycleMutation:
    @strawberry.mutation(description="Stop a campaign for good: enrollments leave, it leaves "
                                     "the list; its enrollments and messages stay on record.")
    async def archive_campaign(self, info: Info, input: CampaignRefInput) -> CampaignPayload:
        principal = info.context.require_principal()

        async def act() -> CampaignPayload:
            principal.require(Scope.CAMPAIGNS_WRITE)
            campaign_id = decode_id(input.campaign_id, "Campaign", field="campaignId")
            async with info.context.uow() as uow:
                view = await lifecycle.archive(uow=uow, principal=principal,
                                               campaign_id=campaign_id, now=datetime.now(UTC))
            return CampaignPayload(campaign=Campaign.from_view(view))

        return await payload(CampaignPayload, act)

    @strawberry.mutation(description="Delete a campaign that never sent a message.")
    async def delete_campaign(self, info: Info, input: CampaignRefInput) -> DeletedPayload:
        principal = info.context.require_principal()

        async def act() -> DeletedPayload:
            principal.require(Scope.CAMPAIGNS_WRITE)
            campaign_id = decode_id(input.campaign_id, "Campaign", field="campaignId")
            async with info.context.uow() as uow:
                gone = await lifecycle.delete(uow=uow, principal=principal,
                                              campaign_id=campaign_id)
            return DeletedPayload(deleted_id=gid("Campaign", gone))

        return await payload(DeletedPayload, act)
