"""Targets and plan-fact: planned figures per rep and team against what happened.

Periods are ISO weeks (Monday 00:00 to the next Monday 00:00) or calendar months, both in
the tenant's time zone (tenants.timezone). Actuals are attributed to the deal's current
owner; a team's actual is the sum over its current members. Won amounts count deals in the
tenant's base currency only (no conversion); see docs/analytics.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import Forbidden, LimitExceeded, NotFound, ValidationFailed
from tenants.principal import Principal, Role
from tenants.scopes import Scope

METRICS = ("won_amount", "won_count", "new_deals", "activities_done")
KINDS = ("week", "month")
MAX_VALUE = Decimal("9999999999999999.99")
MAX_HISTORY = 500


@dataclass(frozen=True)
class Period:
    kind: str
    start: date
    end: date  # exclusive, local date
    starts_at: datetime
    ends_at: datetime
    timezone: str
    is_current: bool


@dataclass
class MetricFact:
    metric: str
    target: Decimal | None
    actual: Decimal
    projected: Decimal | None = None

    @property
    def attainment(self) -> float | None:
        """Actual as a percentage of the target (None without a positive target)."""
        if not self.target:
            return None
        return float(self.actual / self.target * 100)

    @property
    def gap(self) -> Decimal | None:
        return None if self.target is None else self.target - self.actual


@dataclass
class PlanFactRow:
    subject_kind: str  # user / team
    subject_id: uuid.UUID
    name: str
    team_id: uuid.UUID | None
    metrics: list[MetricFact] = field(default_factory=list)


@dataclass
class PlanFact:
    period: Period
    currency: str
    reps: list[PlanFactRow]
    teams: list[PlanFactRow]


def validate_period(kind: str, start: date) -> None:
    if kind not in KINDS:
        raise ValidationFailed("period kind is week or month", field="period.kind")
    if kind == "week" and start.isoweekday() != 1:
        raise ValidationFailed("a week starts on a Monday", field="period.start")
    if kind == "month" and start.day != 1:
        raise ValidationFailed("a month starts on its first day", field="period.start")


def period_end(kind: str, start: date) -> date:
    if kind == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


async def resolve_period(uow: UnitOfWork, kind: str, start: date) -> tuple[Period, str]:
    """The period's instants in the tenant's time zone, and the tenant's base currency."""
    validate_period(kind, start)
    end = period_end(kind, start)
    row = (await uow.session.execute(text("""
        SELECT t.timezone, t.base_currency,
               (CAST(:s AS date)::timestamp AT TIME ZONE t.timezone) AS starts_at,
               (CAST(:e AS date)::timestamp AT TIME ZONE t.timezone) AS ends_at, now() AS now
        FROM tenants t WHERE t.id = :tenant
    """), {"s": start, "e": end, "tenant": uow.tenant_id})).one()
    current = row.starts_at <= row.now < row.ends_at
    return (Period(kind, start, end, row.starts_at, row.ends_at, row.timezone, current),
            row.base_currency.strip())


async def local_today(uow: UnitOfWork) -> date:
    value: date = (await uow.session.execute(text(
        "SELECT (now() AT TIME ZONE timezone)::date FROM tenants WHERE id = :t"),
        {"t": uow.tenant_id})).scalar_one()
    return value


def week_start(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


# ---------------------------------------------------------------------------- targets

async def _user_team(uow: UnitOfWork, user_id: uuid.UUID) -> tuple[bool, uuid.UUID | None]:
    row = (await uow.session.execute(text("SELECT team_id FROM users WHERE id = :u"),
                                     {"u": user_id})).one_or_none()
    return (row is not None, row.team_id if row else None)


async def set_target(*, uow: UnitOfWork, principal: Principal, kind: str, start: date,
                     metric: str, value: Decimal, user_id: uuid.UUID | None = None,
                     team_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Create or replace the target of a user or a team (managers: their team and its
    members; admins and read-write keys: anyone; reps: never)."""
    principal.require(Scope.TARGETS_WRITE)
    validate_period(kind, start)
    if metric not in METRICS:
        raise ValidationFailed(f"metric is one of {', '.join(METRICS)}", field="metric")
    if (user_id is None) == (team_id is None):
        raise ValidationFailed("give exactly one of userId and teamId", field="userId")
    if not value.is_finite() or value < 0 or value > MAX_VALUE:
        raise ValidationFailed("value must be between 0 and 9999999999999999.99", field="value")
    if metric != "won_amount" and value != value.to_integral_value():
        raise ValidationFailed("count targets are whole numbers", field="value")
    if user_id is not None:
        exists, subject_team = await _user_team(uow, user_id)
        if not exists:
            raise NotFound("user not found", field="userId")
    else:
        found = await uow.session.execute(text("SELECT 1 FROM teams WHERE id = :t"),
                                          {"t": team_id})
        if found.scalar_one_or_none() is None:
            raise NotFound("team not found", field="teamId")
        subject_team = team_id
    if (not principal.is_api_key and principal.role == Role.MANAGER
            and (principal.team_id is None or subject_team != principal.team_id)):
        raise Forbidden("managers set targets only for their team and its members")
    row = (await uow.session.execute(text("""
        INSERT INTO targets (tenant_id, id, user_id, team_id, period_kind, period_start, metric,
                             value, set_by)
        VALUES (:tenant, :id, :u, :team, :k, :s, :m, :v, :by)
        ON CONFLICT (tenant_id, user_id, team_id, period_kind, period_start, metric)
        DO UPDATE SET value = EXCLUDED.value, set_by = EXCLUDED.set_by, updated_at = now()
        RETURNING id, user_id, team_id, period_kind, period_start, metric, value, updated_at
    """), {"tenant": uow.tenant_id, "id": uuid.uuid4(), "u": user_id, "team": team_id,
           "k": kind, "s": start, "m": metric, "v": value, "by": principal.user_id})).one()
    return dict(row._mapping)


# ---------------------------------------------------------------------------- plan-fact

_ACTUALS = """
WITH closes AS (
  SELECT DISTINCT ON (e.deal_id) e.deal_id, e.seq, e.amount, e.currency, tk.kind
  FROM stage_events e
  JOIN stages tk ON tk.id = e.to_stage_id AND tk.kind IN ('won', 'lost')
  LEFT JOIN stages fk ON fk.id = e.from_stage_id
  WHERE e.kind NOT IN ('updated', 'deleted', 'restored')
    AND fk.kind IS DISTINCT FROM tk.kind
    AND e.occurred_at >= :s AND e.occurred_at < :e
  ORDER BY e.deal_id, e.seq DESC
),
won AS (
  SELECT d.owner_id, count(*) AS n,
         coalesce(sum(c.amount) FILTER (WHERE c.currency = :cur), 0) AS amount
  FROM closes c JOIN deals d ON d.id = c.deal_id
  WHERE c.kind = 'won' AND d.archived_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM stage_events later JOIN stages ls ON ls.id = later.to_stage_id
    WHERE later.deal_id = c.deal_id AND later.seq > c.seq
      AND later.kind NOT IN ('updated', 'deleted', 'restored')
      AND later.occurred_at < :e AND ls.kind <> 'won')
  GROUP BY d.owner_id
),
created AS (
  SELECT d.owner_id, count(*) AS n FROM deals d
  WHERE d.created_at >= :s AND d.created_at < :e AND d.archived_at IS NULL
  GROUP BY d.owner_id
),
acts AS (
  SELECT a.owner_id, count(*) AS n FROM activities a
  WHERE a.done_at >= :s AND a.done_at < :e GROUP BY a.owner_id
),
open_deals AS (
  SELECT d.owner_id,
         sum(d.amount * coalesce(d.probability_override, st.probability))
           FILTER (WHERE d.currency = :cur) AS amount,
         sum(coalesce(d.probability_override, st.probability)) AS n
  FROM deals d JOIN stages st ON st.id = d.stage_id AND st.kind = 'open'
  WHERE d.expected_close_date >= :sd AND d.expected_close_date < :ed
    AND d.archived_at IS NULL
  GROUP BY d.owner_id
)
SELECT u.id, u.name, u.role, u.team_id,
       coalesce(won.amount, 0) AS won_amount, coalesce(won.n, 0) AS won_count,
       coalesce(created.n, 0) AS new_deals, coalesce(acts.n, 0) AS activities_done,
       coalesce(od.amount, 0) AS open_amount, coalesce(od.n, 0) AS open_count
FROM users u
LEFT JOIN won ON won.owner_id = u.id
LEFT JOIN created ON created.owner_id = u.id
LEFT JOIN acts ON acts.owner_id = u.id
LEFT JOIN open_deals od ON od.owner_id = u.id
ORDER BY u.name, u.id
"""


@dataclass(frozen=True)
class Visibility:
    """Which rows a caller sees: None means everything."""

    users: frozenset[uuid.UUID] | None
    teams: frozenset[uuid.UUID] | None


async def visibility(uow: UnitOfWork, principal: Principal) -> Visibility:
    """Admins and API keys: everything. Managers: their team and its members (and
    themselves). Reps: their own row and their team's total."""
    if principal.is_api_key or principal.role == Role.ADMIN:
        return Visibility(None, None)
    me = principal.user_id
    assert me is not None
    teams = frozenset({principal.team_id}) if principal.team_id else frozenset()
    if principal.role == Role.MANAGER and principal.team_id is not None:
        rows = await uow.session.execute(text("SELECT id FROM users WHERE team_id = :t"),
                                         {"t": principal.team_id})
        return Visibility(frozenset({me, *rows.scalars()}), teams)
    return Visibility(frozenset({me}), teams)


def _check_filters(vis: Visibility, user_id: uuid.UUID | None, team_id: uuid.UUID | None) -> None:
    if user_id is not None and vis.users is not None and user_id not in vis.users:
        raise Forbidden("you may not see this user's plan-fact")
    if team_id is not None and vis.teams is not None and team_id not in vis.teams:
        raise Forbidden("you may not see this team's plan-fact")


async def _targets(uow: UnitOfWork, period: Period) -> dict[tuple[str, uuid.UUID, str], Decimal]:
    rows = await uow.session.execute(text("""
        SELECT user_id, team_id, metric, value FROM targets
        WHERE period_kind = :k AND period_start = :s
    """), {"k": period.kind, "s": period.start})
    out: dict[tuple[str, uuid.UUID, str], Decimal] = {}
    for r in rows:
        if r.user_id is not None:
            out[("user", r.user_id, r.metric)] = r.value
        else:
            out[("team", r.team_id, r.metric)] = r.value
    return out


async def compute(*, uow: UnitOfWork, kind: str, start: date) -> PlanFact:
    """Every user's and team's targets and actuals for the period (no permission filter)."""
    period, currency = await resolve_period(uow, kind, start)
    targets = await _targets(uow, period)
    rows = list(await uow.session.execute(text(_ACTUALS), {
        "s": period.starts_at, "e": period.ends_at, "sd": period.start, "ed": period.end,
        "cur": currency}))
    teams = {r.id: r.name for r in await uow.session.execute(
        text("SELECT id, name FROM teams ORDER BY name, id"))}
    reps: list[PlanFactRow] = []
    team_actuals: dict[uuid.UUID, dict[str, Decimal]] = {t: {} for t in teams}
    team_projected: dict[uuid.UUID, dict[str, Decimal]] = {t: {} for t in teams}
    team_member_targets: dict[uuid.UUID, dict[str, Decimal]] = {t: {} for t in teams}
    for r in rows:
        actual = {m: Decimal(getattr(r, m)) for m in METRICS}
        projected = {"won_amount": actual["won_amount"] + Decimal(r.open_amount),
                     "won_count": actual["won_count"] + Decimal(r.open_count)}
        row = PlanFactRow("user", r.id, r.name, r.team_id)
        has_target = False
        for m in METRICS:
            target = targets.get(("user", r.id, m))
            has_target = has_target or target is not None
            row.metrics.append(MetricFact(
                m, target, actual[m],
                projected.get(m) if period.is_current else None))
            if r.team_id is not None:
                team_actuals[r.team_id][m] = team_actuals[r.team_id].get(m, Decimal(0)) + actual[m]
                if m in projected:
                    team_projected[r.team_id][m] = (
                        team_projected[r.team_id].get(m, Decimal(0)) + projected[m])
                if target is not None:
                    team_member_targets[r.team_id][m] = (
                        team_member_targets[r.team_id].get(m, Decimal(0)) + target)
        if r.role != "admin" or has_target or any(actual.values()):
            reps.append(row)
    team_rows = []
    for team_id, name in teams.items():
        row = PlanFactRow("team", team_id, name, team_id)
        for m in METRICS:
            target = targets.get(("team", team_id, m), team_member_targets[team_id].get(m))
            row.metrics.append(MetricFact(
                m, target, team_actuals[team_id].get(m, Decimal(0)),
                team_projected[team_id].get(m, Decimal(0))
                if period.is_current and m in ("won_amount", "won_count") else None))
        team_rows.append(row)
    return PlanFact(period, currency, reps, team_rows)


async def plan_fact(*, uow: UnitOfWork, principal: Principal, kind: str, start: date,
                    team_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
                    ) -> PlanFact:
    """`compute`, narrowed to what the caller may see and to the optional filters."""
    vis = await visibility(uow, principal)
    _check_filters(vis, user_id, team_id)
    result = await compute(uow=uow, kind=kind, start=start)

    def rep_ok(r: PlanFactRow) -> bool:
        return ((vis.users is None or r.subject_id in vis.users)
                and (user_id is None or r.subject_id == user_id)
                and (team_id is None or r.team_id == team_id))

    def team_ok(r: PlanFactRow) -> bool:
        return ((vis.teams is None or r.subject_id in vis.teams)
                and (team_id is None or r.subject_id == team_id))

    result.reps = [r for r in result.reps if rep_ok(r)]
    result.teams = [r for r in result.teams if team_ok(r)]
    return result


# ---------------------------------------------------------------------------- snapshots

async def snapshot(*, uow: UnitOfWork, kind: str, start: date) -> int:
    """Upsert one row per (subject, metric) for the period; running twice keeps one."""
    result = await compute(uow=uow, kind=kind, start=start)
    params = [
        {"tenant": uow.tenant_id, "k": kind, "s": start, "sk": row.subject_kind,
         "sid": row.subject_id, "m": f.metric, "target": f.target, "actual": f.actual}
        for row in (*result.reps, *result.teams) for f in row.metrics
    ]
    if params:
        await uow.session.execute(text("""
            INSERT INTO plan_fact_snapshots (tenant_id, period_kind, period_start, subject_kind,
                                             subject_id, metric, target, actual)
            VALUES (:tenant, :k, :s, :sk, :sid, :m, :target, :actual)
            ON CONFLICT (tenant_id, period_kind, period_start, subject_kind, subject_id, metric)
            DO UPDATE SET target = EXCLUDED.target, actual = EXCLUDED.actual,
                          computed_at = now()
        """), params)
    return len(params)


async def history(*, uow: UnitOfWork, principal: Principal, kind: str = "week",
                  user_id: uuid.UUID | None = None, team_id: uuid.UUID | None = None,
                  metric: str | None = None, limit: int = 52) -> list[dict[str, Any]]:
    """Stored snapshots, newest period first, limited to what the caller may see."""
    if limit < 1 or limit > MAX_HISTORY:
        raise LimitExceeded(f"limit is 1..{MAX_HISTORY}", field="limit")
    if metric is not None and metric not in METRICS:
        raise ValidationFailed(f"metric is one of {', '.join(METRICS)}", field="metric")
    vis = await visibility(uow, principal)
    _check_filters(vis, user_id, team_id)
    users = None if vis.users is None else [*vis.users]
    teams = None if vis.teams is None else [*vis.teams]
    rows = await uow.session.execute(text("""
        SELECT s.period_kind, s.period_start, s.subject_kind, s.subject_id, s.metric, s.target,
               s.actual, s.computed_at
        FROM plan_fact_snapshots s
        WHERE s.period_kind = :k
          AND (CAST(:m AS text) IS NULL OR s.metric = CAST(:m AS text))
          AND (CAST(:u AS uuid) IS NULL
               OR (s.subject_kind = 'user' AND s.subject_id = CAST(:u AS uuid)))
          AND (CAST(:team AS uuid) IS NULL
               OR (s.subject_kind = 'team' AND s.subject_id = CAST(:team AS uuid))
               OR (s.subject_kind = 'user' AND s.subject_id IN
                   (SELECT id FROM users WHERE team_id = CAST(:team AS uuid))))
          AND ((s.subject_kind = 'user' AND (CAST(:users AS uuid[]) IS NULL
                                             OR s.subject_id = ANY(CAST(:users AS uuid[]))))
            OR (s.subject_kind = 'team' AND (CAST(:teams AS uuid[]) IS NULL
                                             OR s.subject_id = ANY(CAST(:teams AS uuid[])))))
        ORDER BY s.period_start DESC, s.subject_kind, s.subject_id, s.metric
        LIMIT :limit
    """), {"k": kind, "m": metric, "u": user_id, "team": team_id, "users": users,
           "teams": teams, "limit": limit})
    return [dict(r._mapping) for r in rows]
