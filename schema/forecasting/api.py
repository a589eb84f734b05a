"""Types, queries and mutations of forecasts."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncGenerator, Iterable
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from saas.errors import NotFound
from saas.forecasting import service
from schema.context import Info
from schema.errors import UserError
from schema.forecasting.projection import ForecastProjection, from_result
from schema.live.api import errors_mapped
from schema.mutations import payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.enum
class ForecastStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"




@strawberry.type
class Forecast(relay.Node):
    id: relay.NodeID[str]
    pipeline_id: strawberry.ID
    horizon_months: int
    team_id: strawberry.ID | None
    owner_id: strawberry.ID | None
    status: ForecastStatus
    attempts: int
    error: str | None = strawberry.field(description="Why it failed, in words.")
    result: JSON | None = strawberry.field(
        description="The stored result as untyped JSON with raw UUIDs.",
        deprecation_reason="Use projection: typed, with global ids.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(description="Per horizon: stage occupancy, expected won count with an "
                                  "80% band, expected won amount per currency; per owner; the "
                                  "transition matrix. Null until the forecast is done.")
    def projection(self) -> ForecastProjection | None:
        return from_result(cast(dict[str, Any], self.result)) if self.result else None

    @classmethod
    def from_record(cls, r: service.ForecastRecord) -> Forecast:
        return cls(id=str(r.id), pipeline_id=gid("Pipeline", r.pipeline_id),
                   horizon_months=r.horizon_months, team_id=gid("Team", r.team_id),
                   owner_id=gid("User", r.owner_id), status=ForecastStatus(r.status),
                   attempts=r.attempts, error=r.error, result=cast(JSON | None, r.result),
                   created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Forecast | None]:
        out: list[Forecast | None] = []
        async with info.context.uow() as uow:
            for i in node_ids:
                try:
                    out.append(cls.from_record(await service.get(uow=uow,
                                                                 forecast_id=uuid.UUID(i))))
                except NotFound:
                    out.append(None)
        return out


@strawberry.type
class ForecastPayload:
    forecast: Forecast | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Won count or amount in one month of the backtest: the flow "
                             "model's forecast, the weighted-pipeline baseline's (Σ amount x "
                             "stage probability by expected close month, as CRMs forecast) and "
                             "what happened, with each forecast's absolute error.")
class MonthlyComparison:
    model: float
    baseline: float
    actual: float
    model_error: float
    baseline_error: float


@strawberry.type
class ForecastAccuracy:
    horizon: int
    predicted_won_count: float = strawberry.field(description="Cumulative, by this horizon.")
    actual_won_count: float
    predicted_won_amount: float
    actual_won_amount: float
    occupancy_mean_absolute_error: float
    won_count_within_band: bool
    won_count_in_month: MonthlyComparison = strawberry.field(
        description="Deals won during this month (not cumulative): model vs baseline.")
    won_amount_in_month: MonthlyComparison


def _monthly(m: dict[str, list[float]], what: str, h: int) -> MonthlyComparison:
    lower = what.lower()
    return MonthlyComparison(
        model=m[f"modelWon{what}"][h], baseline=m[f"baselineWon{what}"][h],
        actual=m[f"actualWon{what}"][h], model_error=m[f"model_{lower}_error"][h],
        baseline_error=m[f"baseline_{lower}_error"][h])


@strawberry.input
class RequestForecastInput:
    pipeline_id: strawberry.ID
    horizon_months: int = 3
    team_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None


@strawberry.type
class ForecastingQuery:
    @strawberry.field(description="A pipeline's forecasts, newest first.")
    async def forecasts(self, info: Info, pipeline_id: strawberry.ID,
                        first: int = 20) -> list[Forecast]:
        info.context.require(Scope.ANALYTICS_READ)
        pid = decode_id(pipeline_id, "Pipeline", field="pipelineId")
        async with info.context.uow() as uow:
            records = await service.list_for_pipeline(uow=uow, pipeline_id=pid, limit=first)
        return [Forecast.from_record(r) for r in records]

    @strawberry.field(description="Backtest: the model as of a past date, using only events "
                                  "before it, against what happened; one row per horizon.")
    async def forecast_accuracy(self, info: Info, pipeline_id: strawberry.ID, as_of: datetime,
                                horizon: int = 3) -> list[ForecastAccuracy]:
        info.context.require(Scope.ANALYTICS_READ)
        pid = decode_id(pipeline_id, "Pipeline", field="pipelineId")
        async with info.context.uow() as uow:
            r = await service.accuracy(uow=uow, pipeline_id=pid, as_of=as_of, horizon=horizon)
        return [ForecastAccuracy(
            horizon=h + 1, predicted_won_count=r["predictedWonCount"][h],
            actual_won_count=r["actualWonCount"][h],
            predicted_won_amount=r["predictedWonAmount"][h],
            actual_won_amount=r["actualWonAmount"][h],
            occupancy_mean_absolute_error=r["occupancyMeanAbsoluteError"][h],
            won_count_within_band=r["wonCountWithinBand"][h],
            won_count_in_month=_monthly(r["monthly"], "Count", h),
            won_amount_in_month=_monthly(r["monthly"], "Amount", h)) for h in range(horizon)]


@strawberry.type
class ForecastingMutation:
    @strawberry.mutation(description="Queue a forecast; a worker computes it. The same "
                                     "request while one is pending returns that one.")
    async def request_forecast(self, info: Info, input: RequestForecastInput) -> ForecastPayload:
        principal = info.context.require_principal()

        async def act() -> ForecastPayload:
            principal.require(Scope.FORECASTS_WRITE)
            pid = decode_id(input.pipeline_id, "Pipeline", field="pipelineId")
            team = decode_id(input.team_id, "Team", field="teamId") if input.team_id else None
            owner = decode_id(input.owner_id, "User", field="ownerId") if input.owner_id else None
            async with info.context.uow() as uow:
                record = await service.request(
                    uow=uow, principal=principal, relay=info.context.services.outbox,
                    pipeline_id=pid,
                    horizon_months=input.horizon_months, team_id=team, owner_id=owner)
            return ForecastPayload(forecast=Forecast.from_record(record))

        return await payload(ForecastPayload, act)


POLL_SECONDS = 0.5


async def _updates(info: Info, id: strawberry.ID) -> AsyncGenerator[Forecast, None]:
    """The forecast now, then each change of status until it is done or failed.

    Status lives in PostgreSQL (the worker writes it), so the subscription re-reads the row
    by primary key every half second under the caller's tenant: simple, survives worker and
    Redis restarts, and costs one indexed read per open subscription per tick.
    """
    info.context.require(Scope.ANALYTICS_READ)
    forecast_id = decode_id(id, "Forecast", field="id")
    last = None
    while True:
        async with info.context.uow() as uow:
            record = await service.get(uow=uow, forecast_id=forecast_id)
        if record.status != last:
            last = record.status
            yield Forecast.from_record(record)
        if record.status in ("done", "failed"):
            return
        await asyncio.sleep(POLL_SECONDS)


@strawberry.type
class ForecastingSubscription:
    @strawberry.subscription(description="The forecast's status changes, ending when it is "
                                         "done or failed.")
    async def forecast_updated(self, info: Info,
                               id: strawberry.ID) -> AsyncGenerator[Forecast, None]:
        async for item in errors_mapped(_updates(info, id)):
            yield item  # type: ignore[misc]
