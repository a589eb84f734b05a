"""Funnel analytics, bottlenecks, stale deals, targets and plan-fact."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

import strawberry

from saas.analytics import attention
from saas.analytics import service as analytics
from saas.money import round_days, round_money, round_rate
from saas.planning import service as planning
from schema.context import Info
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


def _money(values: dict[str, Decimal]) -> list[MoneyAmount]:
    return [MoneyAmount(currency=c, amount=round_money(a, c)) for c, a in sorted(values.items())]


@strawberry.type(description="An amount in one currency; amounts are never converted.")
class MoneyAmount:
    currency: str
    amount: Decimal


@strawberry.input(description="A half-open interval [from, to).")
class PeriodInput:
    start: datetime = strawberry.field(name="from")
    end: datetime = strawberry.field(name="to")


@strawberry.type
class StageFunnel:
    stage_id: strawberry.ID
    name: str
    position: int
    kind: str
    count: int
    amounts: list[MoneyAmount]


@strawberry.type(description="Totals in the tenant's base currency.")
class BaseCurrencyValue:
    currency: str
    weighted: Decimal | None
    open: Decimal | None
    missing_rates: list[str] = strawberry.field(
        description="Currencies without a rate in force (the totals are then null).")


@strawberry.type(description="Deals that reached the stage in the period (once each) and "
                             "the share that later reached a higher open stage or won.")
class StageConversion:
    stage_id: strawberry.ID
    name: str
    position: int
    kind: str
    reached: int
    advanced: int
    rate: float | None


@strawberry.type(description="Days per deal in the stage during the period (stays summed).")
class StageTime:
    stage_id: strawberry.ID
    name: str
    position: int
    deals: int
    average_days: float | None
    median_days: float | None


@strawberry.type
class LostReasonCount:
    reason: str
    count: int
    amounts: list[MoneyAmount]


@strawberry.type
class Outcomes:
    won: int
    lost: int
    win_rate: float | None
    won_amounts: list[MoneyAmount]
    average_cycle_days: float | None
    velocity_per_day: list[MoneyAmount] = strawberry.field(
        description="won deals x average won amount x win rate / average cycle days")
    lost_reasons: list[LostReasonCount]


@strawberry.type
class Bottleneck:
    stage_id: strawberry.ID
    name: str
    position: int
    inflow: int
    outflow: int
    net_inflow: int
    median_days: float | None
    previous_median_days: float | None
    median_growth_days: float | None
    reasons: list[str]


@strawberry.type
class PipelineAnalytics:
    pipeline_id: strawberry.ID
    _scope: strawberry.Private[analytics.Scope]
    _start: strawberry.Private[datetime]
    _end: strawberry.Private[datetime]

    @strawberry.field(description="Deals and amounts per stage now, or as of a past moment.")
    async def funnel(self, info: Info, as_of: datetime | None = None) -> list[StageFunnel]:
        async with info.context.uow() as uow:
            rows = await analytics.funnel(uow=uow, scope=self._scope, as_of=as_of)
        return [StageFunnel(stage_id=gid("Stage", r.stage_id), name=r.name,
                            position=r.position, kind=r.kind, count=r.count,
                            amounts=_money(r.amounts)) for r in rows]

    @strawberry.field
    async def conversion(self, info: Info) -> list[StageConversion]:
        async with info.context.uow() as uow:
            rows = await analytics.conversion(uow=uow, scope=self._scope, start=self._start,
                                              end=self._end)
        return [StageConversion(stage_id=gid("Stage", r.stage_id), name=r.name,
                                position=r.position, kind=r.kind, reached=r.reached,
                                advanced=r.advanced, rate=round_rate(r.rate)) for r in rows]

    @strawberry.field
    async def time_in_stage(self, info: Info) -> list[StageTime]:
        async with info.context.uow() as uow:
            rows = await analytics.time_in_stage(uow=uow, scope=self._scope, start=self._start,
                                                 end=self._end)
        return [StageTime(stage_id=gid("Stage", r.stage_id), name=r.name,
                          position=r.position, deals=r.deals,
                          average_days=round_days(r.average_days),
                          median_days=round_days(r.median_days)) for r in rows]

    @strawberry.field(description="Deals won/lost in the period, win rate, velocity, reasons.")
    async def outcomes(self, info: Info) -> Outcomes:
        async with info.context.uow() as uow:
            o = await analytics.outcomes(uow=uow, scope=self._scope, start=self._start,
                                         end=self._end)
        return Outcomes(
            won=o.won, lost=o.lost, win_rate=round_rate(o.win_rate),
            won_amounts=_money(o.won_amounts), average_cycle_days=round_days(o.average_cycle_days),
            velocity_per_day=_money(o.velocity()),
            lost_reasons=[LostReasonCount(reason=r.reason, count=r.count,
                                          amounts=_money(r.amounts)) for r in o.lost_reasons])

    @strawberry.field(description="Sum of amount x (override or stage probability), open deals.")
    async def weighted_value(self, info: Info) -> list[MoneyAmount]:
        async with info.context.uow() as uow:
            weighted, _ = await analytics.weighted_value(uow=uow, scope=self._scope)
        return _money(weighted)

    @strawberry.field(description="weightedValue and openValue summed in the base currency "
                                  "at today's rates (null when a currency has no rate).")
    async def value_in_base_currency(self, info: Info) -> BaseCurrencyValue:
        from schema.currency.api import request_rates

        async with info.context.uow() as uow:
            weighted, total = await analytics.weighted_value(uow=uow, scope=self._scope)
        r = await request_rates(info)
        w, missing = r.total(weighted, date.today())
        t, _ = r.total(total, date.today())
        return BaseCurrencyValue(currency=r.base, weighted=w, open=t, missing_rates=missing)

    @strawberry.field(description="Unweighted amount of the open deals.")
    async def open_value(self, info: Info) -> list[MoneyAmount]:
        async with info.context.uow() as uow:
            _, total = await analytics.weighted_value(uow=uow, scope=self._scope)
        return _money(total)

    @strawberry.field(description="Ranked: net inflow, then growth of median time in stage.")
    async def bottlenecks(self, info: Info) -> list[Bottleneck]:
        async with info.context.uow() as uow:
            rows = await attention.bottlenecks(uow=uow, scope=self._scope, start=self._start,
                                               end=self._end)
        return [Bottleneck(stage_id=gid("Stage", b.stage_id), name=b.name,
                           position=b.position, inflow=b.inflow, outflow=b.outflow,
                           net_inflow=b.net_inflow, median_days=b.median_days,
                           previous_median_days=b.previous_median_days,
                           median_growth_days=b.median_growth_days, reasons=b.reasons)
                for b in rows]


@strawberry.type
class StaleDeal:
    deal_id: strawberry.ID
    title: str
    stage_id: strawberry.ID
    stage_name: str
    rotting_days: int
    days_in_stage: float
    days_overdue: float
    amount: Decimal
    currency: str


@strawberry.type
class StaleDealsOfOwner:
    owner_id: strawberry.ID | None
    owner_name: str | None
    deals: list[StaleDeal]


@strawberry.enum
class PeriodKind(enum.Enum):
    WEEK = "week"
    MONTH = "month"


@strawberry.enum
class TargetMetric(enum.Enum):
    WON_AMOUNT = "won_amount"
    WON_COUNT = "won_count"
    NEW_DEALS = "new_deals"
    ACTIVITIES_DONE = "activities_done"


@strawberry.input
class PlanPeriodInput:
    kind: PeriodKind
    start: date = strawberry.field(description="A Monday for weeks, the 1st for months.")


@strawberry.type
class PlanPeriod:
    kind: PeriodKind
    start: date
    end: date
    starts_at: datetime
    ends_at: datetime
    timezone: str
    is_current: bool


@strawberry.type
class MetricFact:
    metric: TargetMetric
    target: Decimal | None
    actual: Decimal
    attainment_percent: float | None
    gap: Decimal | None
    projected: Decimal | None = strawberry.field(
        description="Current period only: actual + open deals closing in it x probability.")


@strawberry.type
class PlanFactRow:
    subject_id: strawberry.ID
    name: str
    team_id: strawberry.ID | None
    metrics: list[MetricFact]


@strawberry.type
class PlanFact:
    period: PlanPeriod
    currency: str = strawberry.field(description="won_amount counts deals in this currency")
    reps: list[PlanFactRow]
    teams: list[PlanFactRow]


@strawberry.type
class PlanFactSnapshot:
    period_kind: PeriodKind
    period_start: date
    subject_kind: str
    subject_id: strawberry.ID
    metric: TargetMetric
    target: Decimal | None
    actual: Decimal
    computed_at: datetime


def _row(r: planning.PlanFactRow) -> PlanFactRow:
    kind = "User" if r.subject_kind == "user" else "Team"
    return PlanFactRow(
        subject_id=gid(kind, r.subject_id), name=r.name,
        team_id=gid("Team", r.team_id),
        metrics=[MetricFact(metric=TargetMetric(f.metric), target=f.target, actual=f.actual,
                            attainment_percent=f.attainment, gap=f.gap, projected=f.projected)
                 for f in r.metrics])


def _opt(value: strawberry.ID | None, kind: str, field: str) -> uuid.UUID | None:
    return decode_id(value, kind, field=field) if value else None


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Funnel analytics of a pipeline over [from, to), optionally "
                                  "for one team's or one owner's deals. Visible to all users.")
    async def pipeline_analytics(self, info: Info, pipeline_id: strawberry.ID,
                                 period: PeriodInput, team_id: strawberry.ID | None = None,
                                 owner_id: strawberry.ID | None = None) -> PipelineAnalytics:
        info.context.require(Scope.ANALYTICS_READ)
        analytics._check_period(period.start, period.end)
        scope = analytics.Scope(decode_id(pipeline_id, "Pipeline", field="pipelineId"),
                                _opt(team_id, "Team", "teamId"),
                                _opt(owner_id, "User", "ownerId"))
        async with info.context.uow() as uow:
            await analytics.check_pipeline(uow, scope.pipeline_id)
        return PipelineAnalytics(pipeline_id=pipeline_id, _scope=scope, _start=period.start,
                                 _end=period.end)

    @strawberry.field(description="Open deals past their stage's rotting days, per owner.")
    async def stale_deals(self, info: Info, pipeline_id: strawberry.ID | None = None,
                          team_id: strawberry.ID | None = None,
                          owner_id: strawberry.ID | None = None) -> list[StaleDealsOfOwner]:
        info.context.require(Scope.ANALYTICS_READ)
        async with info.context.uow() as uow:
            rows = await attention.stale_deals(
                uow=uow, pipeline_id=_opt(pipeline_id, "Pipeline", "pipelineId"),
                team_id=_opt(team_id, "Team", "teamId"), owner_id=_opt(owner_id, "User", "ownerId"))
        groups: dict[uuid.UUID | None, StaleDealsOfOwner] = {}
        for r in rows:
            g = groups.setdefault(r.owner_id, StaleDealsOfOwner(
                owner_id=gid("User", r.owner_id), owner_name=r.owner_name, deals=[]))
            g.deals.append(StaleDeal(
                deal_id=gid("Deal", r.deal_id), title=r.title,
                stage_id=gid("Stage", r.stage_id), stage_name=r.stage_name,
                rotting_days=r.rotting_days, days_in_stage=r.days_in_stage,
                days_overdue=r.days_overdue, amount=r.amount, currency=r.currency))
        return list(groups.values())

    @strawberry.field(description="Targets against actuals per rep and team. Reps see their "
                                  "own row and their team's total; managers their team.")
    async def plan_fact(self, info: Info, period: PlanPeriodInput,
                        team_id: strawberry.ID | None = None,
                        user_id: strawberry.ID | None = None) -> PlanFact:
        principal = info.context.require(Scope.ANALYTICS_READ)
        async with info.context.uow() as uow:
            pf = await planning.plan_fact(
                uow=uow, principal=principal, kind=period.kind.value, start=period.start,
                team_id=_opt(team_id, "Team", "teamId"), user_id=_opt(user_id, "User", "userId"))
        p = pf.period
        return PlanFact(
            period=PlanPeriod(kind=PeriodKind(p.kind), start=p.start, end=p.end,
                              starts_at=p.starts_at, ends_at=p.ends_at, timezone=p.timezone,
                              is_current=p.is_current),
            currency=pf.currency, reps=[_row(r) for r in pf.reps],
            teams=[_row(r) for r in pf.teams])

    @strawberry.field(description="Stored weekly plan-fact snapshots, newest first.")
    async def plan_fact_history(self, info: Info, kind: PeriodKind = PeriodKind.WEEK,
                                user_id: strawberry.ID | None = None,
                                team_id: strawberry.ID | None = None,
                                metric: TargetMetric | None = None,
                                limit: int = 52) -> list[PlanFactSnapshot]:
        principal = info.context.require(Scope.ANALYTICS_READ)
        async with info.context.uow() as uow:
            rows = await planning.history(
                uow=uow, principal=principal, kind=kind.value,
                user_id=_opt(user_id, "User", "userId"), team_id=_opt(team_id, "Team", "teamId"),
                metric=metric.value if metric else None, limit=limit)
        return [PlanFactSnapshot(
            period_kind=PeriodKind(r["period_kind"]), period_start=r["period_start"],
            subject_kind=r["subject_kind"],
            subject_id=gid("User" if r["subject_kind"] == "user" else "Team",
                            r["subject_id"]),
            metric=TargetMetric(r["metric"]), target=r["target"], actual=r["actual"],
            computed_at=r["computed_at"]) for r in rows]
