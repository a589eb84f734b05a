"""Reverse planning: what it takes to win an amount by a date (analytics:read)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import strawberry

from saas.forecasting import revenue
from schema.context import Info
from schema.nodes import decode_id, gid
from tenants.scopes import Scope

CENT = Decimal("0.01")


def money(value: float) -> Decimal:
    """An amount as the API prints money: two decimals (minor units), rounded half-even."""
    return Decimal(repr(value)).quantize(CENT)


@strawberry.type(description="Deals at one stage that would cover the rest of the target "
                             "alone, each worth P(won by the date) x the average won amount.")
class StageRequirement:
    stage_id: strawberry.ID
    kind: str
    value_per_deal: Decimal
    deals_needed: int | None = strawberry.field(
        description="Null when a deal there cannot be won by the date.")


@strawberry.type(description="To win targetAmount by the end of `by`: what the current "
                             "pipeline is expected to bring and the new leads the rest needs.")
class RevenuePlan:
    pipeline_id: strawberry.ID
    currency: str
    target_amount: Decimal
    by: date
    horizon_months: int
    pipeline_expected: Decimal = strawberry.field(
        description="Expected won amount from the deals open now (this currency).")
    remaining: Decimal
    average_won_amount: Decimal
    entry_stage_id: strawberry.ID = strawberry.field(description="Where new deals usually enter.")
    value_per_lead: Decimal
    leads_needed: int | None = strawberry.field(
        description="New leads needed; null when a new lead cannot be won by the date.")
    leads_per_month: float | None
    leads_arrive_evenly: bool
    stages: list[StageRequirement]
    transitions_observed: int = strawberry.field(
        description="Stage transitions of the last 12 months the model learned from "
                    "(0: the configured probabilities alone).")


@strawberry.type
class PlanningQuery:
    @strawberry.field(description="Reverse planning from the fitted forecast model: how many "
                                  "new leads (or deals per stage) are needed to win "
                                  "targetAmount by the end of `by`.")
    async def revenue_plan(self, info: Info, pipeline_id: strawberry.ID, target_amount: Decimal,
                           currency: str, by: date, team_id: strawberry.ID | None = None,
                           owner_id: strawberry.ID | None = None,
                           leads_arrive_evenly: bool = True) -> RevenuePlan:
        principal = info.context.require(Scope.ANALYTICS_READ)
        pid = decode_id(pipeline_id, "Pipeline", field="pipelineId")
        team = decode_id(team_id, "Team", field="teamId") if team_id else None
        owner = decode_id(owner_id, "User", field="ownerId") if owner_id else None
        r = await revenue.revenue_plan(
            db=info.context.services.db, tenant_id=principal.tenant_id, pipeline_id=pid,
            target=target_amount, currency=currency, by=by, team_id=team, owner_id=owner,
            spread=leads_arrive_evenly)
        p = r.plan
        leads_per_month = r.leads_per_month
        return RevenuePlan(
            pipeline_id=pipeline_id, currency=r.currency, target_amount=money(p.target), by=by,
            horizon_months=r.horizon, pipeline_expected=money(p.pipeline_expected),
            remaining=money(p.remaining), average_won_amount=money(r.average_won_amount),
            entry_stage_id=gid("Stage", r.entry_stage_id), value_per_lead=money(p.value_per_lead),
            leads_needed=p.leads_needed,
            leads_per_month=round(leads_per_month, 2) if leads_per_month is not None else None,
            leads_arrive_evenly=r.spread,
            stages=[StageRequirement(stage_id=gid("Stage", sid), kind=kind,
                                     value_per_deal=money(float(v)), deals_needed=n)
                    for sid, kind, v, n in zip(r.stage_ids, r.stage_kinds, p.stage_value,
                                               p.stage_deals_needed, strict=True)
                    if kind == "open"],
            transitions_observed=r.transitions_observed)
