"""What needs attention in a pipeline now: bottleneck stages and stale (rotting) deals.

Same definitions as saas/analytics/service.py (docs/analytics.md); archived deals never count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text

from saas.analytics.service import Scope, _check_period, check_pipeline, time_in_stage
from saas.db import UnitOfWork

STALE_LIMIT = 5000


@dataclass
class Bottleneck:
    stage_id: uuid.UUID
    name: str
    position: int
    inflow: int
    outflow: int
    median_days: float | None
    previous_median_days: float | None
    reasons: list[str]

    @property
    def net_inflow(self) -> int:
        return self.inflow - self.outflow

    @property
    def median_growth_days(self) -> float | None:
        if self.median_days is None or self.previous_median_days is None:
            return None
        return self.median_days - self.previous_median_days


@dataclass
class StaleDeal:
    deal_id: uuid.UUID
    title: str
    owner_id: uuid.UUID | None
    owner_name: str | None
    stage_id: uuid.UUID
    stage_name: str
    rotting_days: int
    days_in_stage: float
    amount: Decimal
    currency: str

    @property
    def days_overdue(self) -> float:
        return self.days_in_stage - self.rotting_days


async def bottlenecks(*, uow: UnitOfWork, scope: Scope, start: datetime, end: datetime
                      ) -> list[Bottleneck]:
    """Open stages whose inflow exceeded their outflow in the period, or whose median time in
    stage grew against the previous period of equal length. Ranked by net inflow, then by
    median growth (both descending)."""
    _check_period(start, end)
    await check_pipeline(uow, scope.pipeline_id)
    flows = await uow.session.execute(text("""
        WITH period AS (
          SELECT e.to_stage_id AS stage_id, e.from_stage_id
          FROM stage_events e JOIN deals d ON d.id = e.deal_id
          LEFT JOIN users u ON u.id = d.owner_id
          WHERE (e.pipeline_id = :p OR e.from_pipeline_id = :p)
            AND e.kind NOT IN ('updated', 'deleted', 'restored') AND d.archived_at IS NULL
            AND e.occurred_at >= CAST(:f AS timestamptz)
            AND e.occurred_at < CAST(:t AS timestamptz)
            AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = CAST(:owner AS uuid))
            AND (CAST(:team AS uuid) IS NULL OR u.team_id = CAST(:team AS uuid))
        )
        SELECT st.id,
               count(*) FILTER (WHERE period.stage_id = st.id) AS inflow,
               count(*) FILTER (WHERE period.from_stage_id = st.id
                                AND period.stage_id IS DISTINCT FROM st.id) AS outflow
        FROM stages st LEFT JOIN period
          ON period.stage_id = st.id OR period.from_stage_id = st.id
        WHERE st.pipeline_id = :p AND st.kind = 'open'
        GROUP BY st.id
    """), {**scope.params(), "f": start, "t": end})
    flow = {r.id: (r.inflow, r.outflow) for r in flows}
    now_t = {t.stage_id: t for t in await time_in_stage(
        uow=uow, scope=scope, start=start, end=end)}
    prev_t = {t.stage_id: t for t in await time_in_stage(
        uow=uow, scope=scope, start=start - (end - start), end=start)}
    found = []
    for stage_id, t in now_t.items():
        inflow, outflow = flow.get(stage_id, (0, 0))
        prev = prev_t.get(stage_id)
        b = Bottleneck(stage_id, t.name, t.position, inflow, outflow, t.median_days,
                       prev.median_days if prev else None, [])
        if b.net_inflow > 0:
            b.reasons.append("inflow_exceeds_outflow")
        growth = b.median_growth_days
        if growth is not None and growth > 0:
            b.reasons.append("time_in_stage_grew")
        if b.reasons:
            found.append(b)
    found.sort(key=lambda b: (-b.net_inflow, -(b.median_growth_days or 0.0), b.position))
    return found


async def stale_deals(*, uow: UnitOfWork, pipeline_id: uuid.UUID | None = None,
                      team_id: uuid.UUID | None = None, owner_id: uuid.UUID | None = None,
                      now: datetime | None = None) -> list[StaleDeal]:
    """Open deals whose time in their current stage exceeds the stage's rotting_days,
    ordered by owner, then most overdue first."""
    rows = await uow.session.execute(text("""
        SELECT d.id, d.title, d.owner_id, u.name AS owner_name, st.id AS stage_id,
               st.name AS stage_name, st.rotting_days, d.amount, d.currency,
               (extract(epoch FROM coalesce(CAST(:now AS timestamptz), now())
                                   - d.stage_entered_at) / 86400.0)::float8 AS days_in
        FROM deals d JOIN stages st ON st.id = d.stage_id AND st.kind = 'open'
        LEFT JOIN users u ON u.id = d.owner_id
        WHERE st.rotting_days IS NOT NULL AND d.archived_at IS NULL
          AND d.stage_entered_at + st.rotting_days * interval '1 day'
              < coalesce(CAST(:now AS timestamptz), now())
          AND (CAST(:p AS uuid) IS NULL OR d.pipeline_id = CAST(:p AS uuid))
          AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = CAST(:owner AS uuid))
          AND (CAST(:team AS uuid) IS NULL OR u.team_id = CAST(:team AS uuid))
        ORDER BY u.name NULLS LAST, d.owner_id,
                 d.stage_entered_at + st.rotting_days * interval '1 day', d.id
        LIMIT :limit
    """), {"p": pipeline_id, "owner": owner_id, "team": team_id, "now": now,
           "limit": STALE_LIMIT})
    return [StaleDeal(r.id, r.title, r.owner_id, r.owner_name, r.stage_id, r.stage_name,
                      r.rotting_days, r.days_in, r.amount, r.currency.strip()) for r in rows]
