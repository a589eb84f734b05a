"""Reverse planning through the API: to win an amount by a date, how many new leads (or deals
at each stage) are needed, from the fitted transition model.

The matrix is the forecast's: estimated from the pipeline's last 12 periods of stage events,
blended toward the configured stage probabilities where history is thin. What the current
pipeline is expected to win by then (in that currency; optionally one team's or rep's deals)
is subtracted from the target; the rest is covered by new leads entering where deals usually
enter, each worth P(won by the date) x the average won amount. Leads arriving evenly over
the months (the default) get less time to close than leads arriving now.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import text

from saas.db import Database
from saas.errors import NotFound, ValidationFailed
from saas.forecasting import data as loading
from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    StageKind,
    estimate_inflow,
    estimate_transitions,
    kind_mask,
)
from saas.forecasting.planning import CurrentDeals, RevenuePlan, plan_revenue, project
from saas.money import check_amount, check_currency
from saas.pipelines import service as pipelines

LOOKBACK_PERIODS = 12
MAX_HORIZON = 24

_AVERAGE_WON = text("""
    SELECT avg(e.amount)::float8 FROM stage_events e
    JOIN stages s ON s.id = e.to_stage_id AND s.kind = 'won'
    LEFT JOIN stages f ON f.id = e.from_stage_id
    WHERE e.pipeline_id = :p AND e.currency = :c AND e.occurred_at >= :since
      AND e.kind NOT IN ('updated', 'deleted', 'restored') AND f.kind IS DISTINCT FROM 'won'
      AND e.deal_id NOT IN (SELECT id FROM deals WHERE archived_at IS NOT NULL)""")
_AVERAGE_OPEN = text("""
    SELECT avg(d.amount)::float8 FROM deals d JOIN stages s ON s.id = d.stage_id
    WHERE d.pipeline_id = :p AND d.currency = :c AND s.kind = 'open'
      AND d.archived_at IS NULL""")


@dataclass(frozen=True)
class Plan:
    plan: RevenuePlan
    currency: str
    horizon: int
    average_won_amount: float
    entry_stage_id: uuid.UUID
    stage_ids: list[uuid.UUID]
    stage_kinds: list[str]
    transitions_observed: int
    spread: bool

    @property
    def leads_per_month(self) -> float | None:
        leads = self.plan.leads_needed
        return None if leads is None else leads / self.horizon


async def revenue_plan(*, db: Database, tenant_id: uuid.UUID, pipeline_id: uuid.UUID,
                       target: Decimal, currency: str, by: date, team_id: uuid.UUID | None,
                       owner_id: uuid.UUID | None, spread: bool = True,
                       now: datetime | None = None) -> Plan:
    """The plan for `target` in `currency` won by the end of `by` (see the module docstring)."""
    amount = float(check_amount(target, field="targetAmount"))
    if amount <= 0:
        raise ValidationFailed("targetAmount must be positive", field="targetAmount")
    check_currency(currency)
    now = now or datetime.now(UTC)
    until = datetime.combine(by + timedelta(days=1), time(), tzinfo=UTC)
    if until <= now:
        raise ValidationFailed("by must be a future date", field="by")
    horizon = math.ceil((until - now) / DEFAULT_PERIOD)
    if horizon > MAX_HORIZON:
        raise ValidationFailed(f"by is at most {MAX_HORIZON} months away", field="by")
    start = now - LOOKBACK_PERIODS * DEFAULT_PERIOD
    async with db.unit_of_work(tenant_id) as uow:
        await pipelines.get_pipeline(uow=uow, pipeline_id=pipeline_id)
        for value, table, field in ((team_id, "teams", "teamId"), (owner_id, "users", "ownerId")):
            if value is not None and not (await uow.session.execute(
                    text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = :i)"),
                    {"i": value})).scalar_one():
                raise NotFound(f"{field[:-2]} not found", field=field)
        stages = await loading.load_stages(uow, pipeline_id)
        if not any(s.kind == StageKind.OPEN for s in stages.stages):
            raise ValidationFailed("the pipeline has no open stage to plan for",
                                   field="pipelineId")
        history = await loading.load_pipeline(uow, pipeline_id, now, stages=stages)
        deals = await loading.load_open_deals(uow, pipeline_id, stages.ids, owner_id, team_id)
        params = {"p": pipeline_id, "c": currency, "since": start}
        average = (await uow.session.execute(_AVERAGE_WON, params)).scalar_one_or_none()
        if average is None:
            average = (await uow.session.execute(_AVERAGE_OPEN, params)).scalar_one_or_none()
    if not average:
        raise ValidationFailed(f"no won or open deals in {currency} to learn an average "
                               "amount from", field="currency")
    estimate = estimate_transitions(history.log, stages.stages, start, now, DEFAULT_PERIOD,
                                    DEFAULT_PRIOR)
    won = kind_mask(stages.stages, StageKind.WON)
    codes = [c.strip() for c in deals.currencies]
    in_currency = (np.array([codes[c] == currency for c in deals.currency], dtype=bool)
                   if deals.size else np.zeros(0, dtype=bool))
    keep = in_currency & ~won[deals.stage] if deals.size else in_currency
    current = CurrentDeals.build(deals.stage[keep], deals.amount[keep])
    expected = float(project(estimate.matrix, stages.stages, current, horizon)
                     .pipeline.amount[horizon])
    inflow = estimate_inflow(history.log, len(stages.stages), start, now, DEFAULT_PERIOD)
    opens = [i for i, s in enumerate(stages.stages) if s.kind == StageKind.OPEN]
    entry = int(np.argmax(inflow.entry)) if inflow.rate > 0 else opens[0]
    if stages.stages[entry].kind != StageKind.OPEN:
        entry = opens[0]
    plan = plan_revenue(amount, estimate.matrix, stages.stages, horizon, float(average),
                        expected, entry_stage=entry, spread_arrivals=spread)
    return Plan(plan=plan, currency=currency, horizon=horizon, average_won_amount=float(average),
                entry_stage_id=stages.ids[entry], stage_ids=stages.ids,
                stage_kinds=[s.kind.name.lower() for s in stages.stages],
                transitions_observed=int(estimate.counts.sum()), spread=spread)
