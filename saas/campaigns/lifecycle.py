"""A campaign's end: archive (stopped for good, hidden from the list, its history kept), or
delete when it never sent a message (a draft created by mistake)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, text

from saas.campaigns.service import CampaignView, get, require_editor, steps_of, stop_enrollments
from saas.db import UnitOfWork
from saas.errors import Conflict
from tenants.principal import Principal


async def archive(*, uow: UnitOfWork, principal: Principal, campaign_id: uuid.UUID,
                  now: datetime) -> CampaignView:
    """Every active enrollment leaves (`campaign_paused`); nothing is sent or enrolled again."""
    require_editor(principal)
    c = await get(uow=uow, campaign_id=campaign_id, for_update=True)
    if c.status == "archived":
        raise Conflict("the campaign is already archived", field="campaignId")
    await stop_enrollments(uow, where="campaign_id = :c", params={"c": c.id},
                           reason="campaign_paused", now=now)
    c.status = "archived"
    c.version += 1
    c.updated_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(c)
    return CampaignView(c, (await steps_of(uow, [c.id])).get(c.id, []))


async def delete(*, uow: UnitOfWork, principal: Principal, campaign_id: uuid.UUID) -> uuid.UUID:
    """Only a campaign that never sent (or tried to send) a message can go."""
    require_editor(principal)
    c = await get(uow=uow, campaign_id=campaign_id, for_update=True)
    sends = int((await uow.session.execute(text(
        "SELECT count(*) FROM campaign_sends WHERE campaign_id = :c"), {"c": c.id})).scalar_one())
    if sends:
        raise Conflict(f"the campaign has {sends} message(s) on record: archive it instead",
                       field="campaignId")
    await uow.session.execute(text("DELETE FROM campaign_enrollments WHERE campaign_id = :c"),
                              {"c": c.id})
    await uow.session.delete(c)
    await uow.session.flush()
    return c.id
