"""Funnel analytics in SQL, reconstructed from the stage-event log.

Definitions (also in docs/analytics.md):
- a *stay* is the time between an event that put a deal in a stage and the deal's next
  stage-changing event (any kind but `updated`), or now if there is none;
- *reached* a stage in a period: the deal entered it (created, moved, reopened, transferred
  into it) in [from, to); counted once per deal;
- *advanced* from a stage: after its first entry in the period, the deal entered, before
  `to`, an open stage of higher position or any won stage; counted once per deal;
- *time in stage*: per deal, the sum of all its stays in the stage clipped to the period
  (a re-entry accumulates); average and median are over deals;
- *closed in the period*: the deal's last entry into a won/lost stage coming from a stage of
  another kind happened in [from, to), and the deal was still in that outcome at `to`;
- amounts are never converted: every money figure is a list of {currency, amount}.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import LimitExceeded, NotFound, ValidationFailed

MAX_PERIOD_DAYS = 3660

Money = dict[str, Decimal]


@dataclass(frozen=True)
class Scope:
    """Which deals count: a pipeline, optionally narrowed to a team's or an owner's deals."""

    pipeline_id: uuid.UUID
    team_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None

    def params(self) -> dict[str, Any]:
        return {"p": self.pipeline_id, "team": self.team_id, "owner": self.owner_id}


@dataclass
class StageCount:
    stage_id: uuid.UUID
    name: str
    position: int
    kind: str
    count: int = 0
    amounts: Money = field(default_factory=dict)


@dataclass
class StageConversion:
    stage_id: uuid.UUID
    name: str
    position: int
    kind: str
    reached: int
    advanced: int

    @property
    def rate(self) -> float | None:
        if self.kind != "open" or not self.reached:
            return None
        return self.advanced / self.reached


@dataclass
class StageTime:
    stage_id: uuid.UUID
    name: str
    position: int
    deals: int
    average_days: float | None
    median_days: float | None


@dataclass
class LostReason:
    reason: str
    count: int
    amounts: Money


@dataclass
class Outcomes:
    won: int
    lost: int
    won_amounts: Money
    average_cycle_days: float | None
    lost_reasons: list[LostReason]

    @property
    def win_rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None

    def velocity(self) -> Money:
        """Per currency: won deals x average won amount x win rate / average cycle days
        (won deals x average amount is the won amount of that currency)."""
        rate, cycle = self.win_rate, self.average_cycle_days
        if rate is None or not cycle:
            return {}
        factor = Decimal(str(rate)) / Decimal(str(cycle))
        return {c: a * factor for c, a in self.won_amounts.items()}


# Deals in scope (owner / team of the current owner) that ever touched the pipeline: those in
# it now, and those that left it (a transfer names the pipeline it left).
_SCOPE = """
scope AS (
  SELECT d.id FROM deals d LEFT JOIN users u ON u.id = d.owner_id
  WHERE (d.pipeline_id = :p
         OR d.id IN (SELECT deal_id FROM stage_events WHERE from_pipeline_id = :p))
    AND d.archived_at IS NULL
    AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = CAST(:owner AS uuid))
    AND (CAST(:team AS uuid) IS NULL OR u.team_id = CAST(:team AS uuid))
),
ev AS (
  SELECT e.deal_id, e.seq, e.kind, e.from_stage_id, e.to_stage_id AS stage_id, e.amount,
         e.currency, e.lost_reason, e.occurred_at,
         lead(e.occurred_at) OVER (PARTITION BY e.deal_id ORDER BY e.seq) AS left_at
  FROM stage_events e JOIN scope s ON s.id = e.deal_id
  WHERE e.kind NOT IN ('updated', 'deleted', 'restored')
),
st AS (SELECT id, name, position, kind, probability FROM stages WHERE pipeline_id = :p)
"""


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("period bounds need a time zone", field="period")
    if end <= start:
        raise ValidationFailed("period end must be after its start", field="period.to")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise LimitExceeded(f"a period is at most {MAX_PERIOD_DAYS} days", field="period")


async def check_pipeline(uow: UnitOfWork, pipeline_id: uuid.UUID) -> None:
    found = await uow.session.execute(text("SELECT 1 FROM pipelines WHERE id = :p"),
                                      {"p": pipeline_id})
    if found.scalar_one_or_none() is None:
        raise NotFound("pipeline not found", field="pipelineId")


async def _now(uow: UnitOfWork) -> datetime:
    value: datetime = (await uow.session.execute(text("SELECT now()"))).scalar_one()
    return value


async def funnel(*, uow: UnitOfWork, scope: Scope, as_of: datetime | None = None
                 ) -> list[StageCount]:
    """Deals and amounts per stage as of a moment (default now): each deal's last event at or
    before it says where it was and for how much."""
    await check_pipeline(uow, scope.pipeline_id)
    as_of = as_of or await _now(uow)
    rows = await uow.session.execute(text(f"""
        WITH {_SCOPE},
        last AS (
          SELECT DISTINCT ON (e.deal_id) e.deal_id, e.pipeline_id, e.to_stage_id, e.amount,
                 e.currency
          FROM stage_events e JOIN scope s ON s.id = e.deal_id
          WHERE e.occurred_at <= CAST(:as_of AS timestamptz)
          ORDER BY e.deal_id, e.seq DESC
        )
        SELECT st.id, st.name, st.position, st.kind, l.currency, count(l.deal_id) AS n,
               sum(l.amount) AS amount
        FROM stages st LEFT JOIN last l ON l.to_stage_id = st.id AND l.pipeline_id = :p
        WHERE st.pipeline_id = :p AND (st.archived_at IS NULL OR l.deal_id IS NOT NULL)
        GROUP BY st.id, st.name, st.position, st.kind, l.currency
        ORDER BY st.position, l.currency
    """), {**scope.params(), "as_of": as_of})
    out: dict[uuid.UUID, StageCount] = {}
    for r in rows:
        sc = out.setdefault(r.id, StageCount(r.id, r.name, r.position, r.kind))
        if r.currency is not None:
            sc.count += r.n
            sc.amounts[r.currency.strip()] = r.amount
    return list(out.values())


async def conversion(*, uow: UnitOfWork, scope: Scope, start: datetime, end: datetime
                     ) -> list[StageConversion]:
    _check_period(start, end)
    await check_pipeline(uow, scope.pipeline_id)
    # One pass per deal instead of a correlated EXISTS: for each entry, the best stage
    # entered after it (won counts as beyond every open stage) comes from a window over the
    # deal's entries in reverse; a deal advanced from its first entry into a stage when that
    # best is higher than the stage's position.
    rows = await uow.session.execute(text(f"""
        WITH {_SCOPE},
        entries AS (
          SELECT e.deal_id, e.seq, e.to_stage_id AS stage_id, st.position, st.kind
          FROM stage_events e JOIN scope s ON s.id = e.deal_id
          JOIN st ON st.id = e.to_stage_id
          WHERE e.kind NOT IN ('updated', 'deleted', 'restored')
            AND e.occurred_at >= CAST(:f AS timestamptz)
            AND e.occurred_at < CAST(:t AS timestamptz)
        ),
        scored AS (
          SELECT stage_id, position,
                 max(CASE kind WHEN 'won' THEN 2147483647 WHEN 'open' THEN position
                     ELSE -1 END)
                   OVER (PARTITION BY deal_id ORDER BY seq DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later_best,
                 row_number() OVER (PARTITION BY deal_id, stage_id ORDER BY seq) AS nth
          FROM entries
        ),
        per_stage AS (
          SELECT stage_id, count(*) AS reached,
                 count(*) FILTER (WHERE later_best > position) AS advanced
          FROM scored WHERE nth = 1 GROUP BY stage_id
        )
        SELECT st.id, st.name, st.position, st.kind,
               coalesce(ps.reached, 0) AS reached, coalesce(ps.advanced, 0) AS advanced
        FROM st LEFT JOIN per_stage ps ON ps.stage_id = st.id
        JOIN stages s2 ON s2.id = st.id
        WHERE s2.archived_at IS NULL OR ps.reached IS NOT NULL
        ORDER BY st.position
    """), {**scope.params(), "f": start, "t": end})
    return [StageConversion(r.id, r.name, r.position, r.kind, r.reached, r.advanced)
            for r in rows]


_TIME_SQL = f"""
    WITH {_SCOPE},
    bounds AS (SELECT CAST(:f AS timestamptz) AS f,
                      least(CAST(:t AS timestamptz), now()) AS t),
    stays AS (
      SELECT ev.deal_id, ev.stage_id,
             extract(epoch FROM least(coalesce(ev.left_at, b.t), b.t)
                              - greatest(ev.occurred_at, b.f)) / 86400.0 AS days
      FROM ev JOIN st ON st.id = ev.stage_id AND st.kind = 'open' CROSS JOIN bounds b
      WHERE ev.occurred_at < b.t AND coalesce(ev.left_at, 'infinity') > b.f
    ),
    per_deal AS (SELECT stage_id, deal_id, sum(days) AS days FROM stays GROUP BY 1, 2)
    SELECT st.id, st.name, st.position, count(pd.deal_id) AS deals,
           avg(pd.days)::float8 AS average_days,
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY pd.days))::float8 AS median_days
    FROM st LEFT JOIN per_deal pd ON pd.stage_id = st.id
    WHERE st.kind = 'open'
    GROUP BY st.id, st.name, st.position
    ORDER BY st.position
"""


async def time_in_stage(*, uow: UnitOfWork, scope: Scope, start: datetime, end: datetime
                        ) -> list[StageTime]:
    """Per open stage, over deals: average and median of the days each deal spent in it
    during the period (all its stays summed)."""
    _check_period(start, end)
    await check_pipeline(uow, scope.pipeline_id)
    rows = await uow.session.execute(text(_TIME_SQL),
                                     {**scope.params(), "f": start, "t": end})
    return [StageTime(r.id, r.name, r.position, r.deals, r.average_days, r.median_days)
            for r in rows]


async def outcomes(*, uow: UnitOfWork, scope: Scope, start: datetime, end: datetime) -> Outcomes:
    """Deals won and lost in the period, won amounts, cycle length, lost reasons."""
    _check_period(start, end)
    await check_pipeline(uow, scope.pipeline_id)
    # Closing events are read from the period's slice of the pipeline's log (index on
    # pipeline and time); each closed deal's state at the period end and its first event are
    # single index probes per deal (LATERAL over the deal's events by seq).
    rows = await uow.session.execute(text("""
        WITH closes AS (
          SELECT e.deal_id, e.seq, tk.kind AS outcome, e.amount, e.currency, e.lost_reason,
                 e.occurred_at
          FROM stage_events e
          JOIN stages tk ON tk.id = e.to_stage_id AND tk.kind IN ('won', 'lost')
          LEFT JOIN stages fk ON fk.id = e.from_stage_id
          WHERE e.pipeline_id = :p AND e.kind NOT IN ('updated', 'deleted', 'restored')
            AND fk.kind IS DISTINCT FROM tk.kind
            AND e.occurred_at >= CAST(:f AS timestamptz)
            AND e.occurred_at < CAST(:t AS timestamptz)
        ),
        last_close AS (
          SELECT DISTINCT ON (deal_id) * FROM closes ORDER BY deal_id, seq DESC
        ),
        scoped AS (
          SELECT c.* FROM last_close c JOIN deals d ON d.id = c.deal_id
          LEFT JOIN users u ON u.id = d.owner_id
          WHERE d.archived_at IS NULL
            AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = CAST(:owner AS uuid))
            AND (CAST(:team AS uuid) IS NULL OR u.team_id = CAST(:team AS uuid))
        )
        SELECT c.outcome, c.currency, c.lost_reason, count(*) AS n, sum(c.amount) AS amount,
               sum(extract(epoch FROM c.occurred_at - fe.at) / 86400.0)::float8 AS cycle_days
        FROM scoped c
        CROSS JOIN LATERAL (
          SELECT s.kind FROM stage_events x JOIN stages s ON s.id = x.to_stage_id
          WHERE x.deal_id = c.deal_id AND x.kind NOT IN ('updated', 'deleted', 'restored')
            AND x.occurred_at < CAST(:t AS timestamptz)
          ORDER BY x.seq DESC LIMIT 1
        ) se
        CROSS JOIN LATERAL (
          SELECT x.occurred_at AS at FROM stage_events x
          WHERE x.deal_id = c.deal_id AND x.kind NOT IN ('updated', 'deleted', 'restored')
          ORDER BY x.seq LIMIT 1
        ) fe
        WHERE se.kind = c.outcome
        GROUP BY c.outcome, c.currency, c.lost_reason
    """), {**scope.params(), "f": start, "t": end})
    won = lost = 0
    cycle_sum = 0.0
    won_amounts: Money = defaultdict(Decimal)
    reasons: dict[str, LostReason] = {}
    for r in rows:
        currency = r.currency.strip()
        if r.outcome == "won":
            won += r.n
            cycle_sum += r.cycle_days
            won_amounts[currency] += r.amount
        else:
            lost += r.n
            reason = r.lost_reason or "(none)"
            lr = reasons.setdefault(reason, LostReason(reason, 0, {}))
            lr.count += r.n
            lr.amounts[currency] = lr.amounts.get(currency, Decimal(0)) + r.amount
    ordered = sorted(reasons.values(), key=lambda x: (-x.count, x.reason))
    return Outcomes(won, lost, dict(won_amounts), cycle_sum / won if won else None, ordered)


async def weighted_value(*, uow: UnitOfWork, scope: Scope) -> tuple[Money, Money]:
    """(weighted, unweighted) value of the open deals now in the pipeline, per currency."""
    await check_pipeline(uow, scope.pipeline_id)
    rows = await uow.session.execute(text("""
        SELECT d.currency, sum(d.amount * coalesce(d.probability_override, st.probability))
                 AS weighted, sum(d.amount) AS total
        FROM deals d JOIN stages st ON st.id = d.stage_id AND st.kind = 'open'
        LEFT JOIN users u ON u.id = d.owner_id
        WHERE d.pipeline_id = :p AND d.archived_at IS NULL
          AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = CAST(:owner AS uuid))
          AND (CAST(:team AS uuid) IS NULL OR u.team_id = CAST(:team AS uuid))
        GROUP BY d.currency ORDER BY d.currency
    """), scope.params())
    weighted: Money = {}
    total: Money = {}
    for r in rows:
        weighted[r.currency.strip()] = r.weighted.quantize(Decimal("0.01"))
        total[r.currency.strip()] = r.total
    return weighted, total
