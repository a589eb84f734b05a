"""Forecast records: request (its job through the outbox), run idempotently, read, backtest."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from saas import entity_events, outbox
from saas.db import Database, UnitOfWork
from saas.errors import LimitExceeded, NotFound, ValidationFailed
from saas.forecasting import baseline
from saas.forecasting import data as loading
from saas.forecasting.compute import forecast
from saas.forecasting.model import DEFAULT_PERIOD
from saas.pipelines import service as pipelines
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_HORIZON = 24
JOB = "run_forecast"


@dataclass(frozen=True)
class ForecastRecord:
    id: uuid.UUID
    pipeline_id: uuid.UUID
    horizon_months: int
    team_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    status: str
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


_COLUMNS = ("id, pipeline_id, horizon_months, team_id, owner_id, status, attempts, error, "
            "result, created_at, started_at, finished_at")


def _record(row: Any) -> ForecastRecord:
    values = dict(row._mapping)
    if isinstance(values["result"], str):
        values["result"] = json.loads(values["result"])
    return ForecastRecord(**values)


def job_id(forecast_id: uuid.UUID) -> str:
    return f"forecast:{forecast_id}"


async def request(
    *, uow: UnitOfWork, principal: Principal, relay: outbox.Relay | None,
    pipeline_id: uuid.UUID, horizon_months: int, team_id: uuid.UUID | None,
    owner_id: uuid.UUID | None, origin: str = "request", request_key: str | None = None,
    enqueue: bool = True,
) -> ForecastRecord:
    """Create a queued forecast with its job in the outbox (same transaction; relayed after
    commit, or by the sweeper while Redis is away); an identical request that is still
    pending returns the pending one instead (one job, one result). `enqueue=False`: the
    caller computes it itself (nightly jobs, demo seeding)."""
    principal.require(Scope.FORECASTS_WRITE)
    if not 1 <= horizon_months <= MAX_HORIZON:
        raise ValidationFailed(f"horizonMonths must be 1-{MAX_HORIZON}", field="horizonMonths")
    await pipelines.get_pipeline(uow=uow, pipeline_id=pipeline_id)
    for value, table, field in ((team_id, "teams", "teamId"), (owner_id, "users", "ownerId")):
        if value is not None and not (await uow.session.execute(
                text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = :i)"),
                {"i": value})).scalar_one():
            raise NotFound(f"{field[:-2]} not found", field=field)
    key = request_key or f"{pipeline_id}:{horizon_months}:{team_id}:{owner_id}"
    row = (await uow.session.execute(text(
        f"""INSERT INTO forecasts (tenant_id, id, pipeline_id, horizon_months, team_id, owner_id,
                                   request_key, origin, requested_by)
            VALUES (:t, :id, :p, :h, :team, :owner, :key, :origin, :by)
            ON CONFLICT (tenant_id, request_key) WHERE status IN ('queued', 'running')
            DO NOTHING RETURNING {_COLUMNS}"""),
        {"t": principal.tenant_id, "id": uuid.uuid4(), "p": pipeline_id, "h": horizon_months,
         "team": team_id, "owner": owner_id, "key": key, "origin": origin,
         "by": principal.user_id})).one_or_none()
    if row is None:
        pending = (await uow.session.execute(text(
            f"SELECT {_COLUMNS} FROM forecasts WHERE request_key = :key "
            "AND status IN ('queued', 'running')"), {"key": key})).one()
        return _record(pending)
    record = _record(row)
    if enqueue:
        await outbox.add(uow, relay, function=JOB, job_id=job_id(record.id),
                         tenant_id=str(principal.tenant_id), forecast_id=str(record.id))
    return record


async def get(*, uow: UnitOfWork, forecast_id: uuid.UUID) -> ForecastRecord:
    row = (await uow.session.execute(
        text(f"SELECT {_COLUMNS} FROM forecasts WHERE id = :id"), {"id": forecast_id})
    ).one_or_none()
    if row is None:
        raise NotFound("forecast not found", field="id")
    return _record(row)


async def list_for_pipeline(
    *, uow: UnitOfWork, pipeline_id: uuid.UUID, limit: int
) -> list[ForecastRecord]:
    if not 0 < limit <= 100:
        raise LimitExceeded("first must be 1-100", field="first")
    rows = await uow.session.execute(text(
        f"SELECT {_COLUMNS} FROM forecasts WHERE pipeline_id = :p "
        "ORDER BY created_at DESC, id LIMIT :n"), {"p": pipeline_id, "n": limit})
    return [_record(r) for r in rows]


class ForecastFailed(Exception):
    """The data or the model cannot produce a forecast: permanent, not retried."""


async def run(*, db: Database, tenant_id: uuid.UUID, forecast_id: uuid.UUID,
              now: datetime | None = None) -> str:
    """Compute and store one forecast; safe to call again (a done forecast is left as is)."""
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(text(
            "UPDATE forecasts SET status = 'running', attempts = attempts + 1, "
            "started_at = now() WHERE id = :id AND status IN ('queued', 'running') "
            "RETURNING pipeline_id, horizon_months, team_id, owner_id"),
            {"id": forecast_id})).one_or_none()
        if row is None:
            status = (await uow.session.execute(
                text("SELECT status FROM forecasts WHERE id = :id"), {"id": forecast_id})
            ).scalar_one_or_none()
            return status or "missing"
    as_of = now or datetime.now(UTC)
    try:
        loaded, deals = await load(db=db, tenant_id=tenant_id, pipeline_id=row.pipeline_id,
                                   as_of=as_of, owner_id=row.owner_id, team_id=row.team_id)
        # NumPy work off the event loop, so a big tenant does not stall other jobs.
        result = await asyncio.to_thread(
            forecast, loaded, deals, horizon=row.horizon_months, as_of=as_of,
            include_inflow=row.owner_id is None and row.team_id is None)
    except (ValueError, ArithmeticError, ForecastFailed) as e:
        await mark_failed(db=db, tenant_id=tenant_id, forecast_id=forecast_id,
                          reason=f"the forecast could not be computed: {e}")
        return "failed"
    async with db.unit_of_work(tenant_id) as uow:
        done = (await uow.session.execute(text(
            "UPDATE forecasts SET status = 'done', result = CAST(:r AS jsonb), error = NULL, "
            "finished_at = now() WHERE id = :id AND status = 'running' RETURNING origin"),
            {"id": forecast_id, "r": json.dumps(result)})).one_or_none()
        if done is not None:  # partners hear of it (webhooks), once: in this transaction
            await entity_events.append(
                uow, kind="forecast.completed", entity_type="Forecast", entity_id=forecast_id,
                pipeline_id=row.pipeline_id,
                data={"forecast": {"id": entity_events.gid("Forecast", forecast_id),
                                   "pipelineId": entity_events.gid("Pipeline", row.pipeline_id),
                                   "horizonMonths": row.horizon_months,
                                   "origin": done.origin}})
    return "done"


async def load(*, db: Database, tenant_id: uuid.UUID, pipeline_id: uuid.UUID, as_of: datetime,
               owner_id: uuid.UUID | None, team_id: uuid.UUID | None,
               ) -> tuple[loading.PipelineData, loading.OpenDeals]:
    """The pipeline's event log and its deals now, read at the same time on two connections,
    each in its own unit of work for the tenant (so under RLS). Each statement reads its own
    snapshot, exactly as the two statements of one READ COMMITTED transaction did."""
    async with db.unit_of_work(tenant_id) as uow:
        stages = await loading.load_stages(uow, pipeline_id)

    async def events() -> loading.PipelineData:
        async with db.unit_of_work(tenant_id) as uow:
            return await loading.load_pipeline(uow, pipeline_id, as_of, stages=stages)

    async def deals() -> loading.OpenDeals:
        async with db.unit_of_work(tenant_id) as uow:
            return await loading.load_open_deals(uow, pipeline_id, stages.ids, owner_id,
                                                 team_id)

    async with asyncio.TaskGroup() as group:
        loaded, current = group.create_task(events()), group.create_task(deals())
    return loaded.result(), current.result()


async def mark_failed(*, db: Database, tenant_id: uuid.UUID, forecast_id: uuid.UUID,
                      reason: str) -> None:
    async with db.unit_of_work(tenant_id) as uow:
        await uow.session.execute(text(
            "UPDATE forecasts SET status = 'failed', error = :e, finished_at = now() "
            "WHERE id = :id AND status IN ('queued', 'running')"),
            {"id": forecast_id, "e": reason[:1000]})


async def accuracy(*, uow: UnitOfWork, pipeline_id: uuid.UUID, as_of: datetime,
                   horizon: int) -> dict[str, Any]:
    """Re-run the model as of a past date with only earlier events; compare with what happened."""
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValidationFailed(f"horizon must be 1-{MAX_HORIZON}", field="horizon")
    if as_of.tzinfo is None:
        raise ValidationFailed("asOf needs a time zone offset", field="asOf")
    if as_of + horizon * DEFAULT_PERIOD > datetime.now(UTC):
        raise ValidationFailed("asOf + horizon must lie in the past to be scored", field="asOf")
    await pipelines.get_pipeline(uow=uow, pipeline_id=pipeline_id)
    now = datetime.now(UTC)
    stages = await loading.load_stages(uow, pipeline_id)
    loaded = await loading.load_pipeline(uow, pipeline_id, now, stages=stages,
                                         with_amounts=True)
    assert loaded.amounts is not None
    close_at, override = await loading.load_close_dates(uow, pipeline_id, now, stages,
                                                        loaded.log.n_deals)
    scored = baseline.compare(loaded.log, loaded.stages, loaded.amounts, close_at, override,
                              as_of, horizon)
    result = scored.result
    errors = scored.errors()
    return {
        "monthly": {
            "modelWonCount": scored.model_count[1:].tolist(),
            "baselineWonCount": scored.baseline_count[1:].tolist(),
            "actualWonCount": scored.actual_count[1:].tolist(),
            "modelWonAmount": scored.model_amount[1:].tolist(),
            "baselineWonAmount": scored.baseline_amount[1:].tolist(),
            "actualWonAmount": scored.actual_amount[1:].tolist(),
            **{f"{k}_error": v[1:].tolist() for k, v in errors.items()},
        },
        "predictedWonCount": result.predicted.count[1:].tolist(),
        "actualWonCount": result.actual_won_count[1:].tolist(),
        "predictedWonAmount": result.predicted.amount[1:].tolist(),
        "actualWonAmount": result.actual_won_amount[1:].tolist(),
        "occupancyMeanAbsoluteError": result.occupancy_mae[1:].tolist(),
        "wonCountWithinBand": result.count_covered[1:].tolist(),
    }
