"""Per-request loaders of campaigns and their enrollments: one batch of statements for all
the parents at one level of a response, whatever their number (no N+1)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from saas.campaigns import models
from saas.campaigns import service as campaigns
from schema.context import Info

CampaignRow = tuple[models.Campaign, list[models.CampaignStep]]
EnrollmentRow = tuple[models.Enrollment, list[models.Send]]


def campaigns_by_id(info: Info) -> DataLoader[uuid.UUID, CampaignRow | None]:
    """Campaigns with their steps by id (two statements per batch)."""
    key = "campaigns:by_id"
    loaders = info.context.loaders
    if key not in loaders:
        context = info.context

        async def load(ids: list[uuid.UUID]) -> list[CampaignRow | None]:
            async with context.uow() as uow:
                rows = await uow.session.execute(
                    select(models.Campaign).where(models.Campaign.id.in_(ids)))
                found = {c.id: c for c in rows.scalars()}
                steps = await campaigns.steps_of(uow, list(found))
            return [(found[i], steps.get(i, [])) if i in found else None for i in ids]

        loaders[key] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, CampaignRow | None] = loaders[key]
    return loader


def enrollments_by_campaign(info: Info, *, first: int,
                            status: str | None) -> DataLoader[uuid.UUID, list[EnrollmentRow]]:
    """Each campaign's newest `first` enrollments with their sends (two statements per
    batch); one loader per (first, status), as the arguments may differ per field."""
    key = f"campaigns:enrollments:{first}:{status}"
    loaders = info.context.loaders
    if key not in loaders:
        context = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[EnrollmentRow]]:
            async with context.uow() as uow:
                by_campaign = await campaigns.enrollments_of(
                    uow=uow, campaign_ids=list(ids), status=status, limit=first)
                enrollment_ids = [e.id for rows in by_campaign.values() for e in rows]
                sends = await campaigns.sends(uow=uow, enrollment_ids=enrollment_ids,
                                              limit=max(1, len(enrollment_ids))
                                              * campaigns.MAX_STEPS)
            by_enrollment: dict[uuid.UUID, list[models.Send]] = {}
            for s in sends:
                by_enrollment.setdefault(s.enrollment_id, []).append(s)
            return [[(e, by_enrollment.get(e.id, [])) for e in by_campaign.get(i, [])]
                    for i in ids]

        loaders[key] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, list[Any]] = loaders[key]
    return loader
