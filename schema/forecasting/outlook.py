"""Deal.winProbability / expectedCloseMonth / winProbabilitySource: per request, one query
for the latest forecast of every pipeline asked about (saas/forecasting/probability.py)."""

from __future__ import annotations

import enum
import uuid
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from saas.forecasting import probability
from saas.pipelines import models as pipeline_models
from schema.context import Info
from schema.loaders import by_id
from tenants.scopes import Scope


@strawberry.enum(description="Where a deal's winProbability comes from.")
class WinProbabilitySource(enum.Enum):
    FORECAST = "forecast"
    STAGE_PROBABILITY = "stage_probability"
    OVERRIDE = "override"
    WON = "won"


def _pipelines(info: Info) -> DataLoader[uuid.UUID, probability.PipelineOutlook | None]:
    loaders = info.context.loaders
    if "outlook" not in loaders:
        context = info.context

        async def load(ids: list[uuid.UUID]) -> list[probability.PipelineOutlook | None]:
            async with context.uow() as uow:
                found = await probability.latest(uow, ids)
            return [found.get(i) for i in ids]

        loaders["outlook"] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, probability.PipelineOutlook | None] = loaders["outlook"]
    return loader


async def deal_outlook(info: Info, deal: Any) -> probability.DealOutlook:
    """The deal's outlook; forecasts are analytics: without analytics:read a caller gets the
    configured stage probability (and the deal's own dates) only."""
    cached: probability.DealOutlook | None = deal.prefetched.get("outlook")
    if cached is not None:
        return cached
    stage = deal.prefetched.get("stage")
    if stage is None:
        row = await by_id(info, pipeline_models.Stage).load(deal.stage_id_)
        kind, p = row.kind, float(row.probability)
    else:
        kind, p = stage.kind.value, float(stage.probability)
    principal = info.context.require_principal()
    pipeline = None
    if principal.has(Scope.ANALYTICS_READ):
        pipeline = await _pipelines(info).load(deal.pipeline_id_)
    override = float(deal.probability_override) if deal.probability_override is not None \
        else None
    result = probability.for_deal(stage_id=deal.stage_id_, stage_kind=kind,
                                  stage_probability=p, override=override,
                                  expected_close=deal.expected_close_date, pipeline=pipeline)
    deal.prefetched["outlook"] = result
    return result
