"""Forecast jobs: compute one requested forecast; a nightly fan-out per tenant and pipeline.

A job may run more than once (a killed worker's job is retried by arq): `service.run` only
moves a forecast queued/running -> done/failed, so a second run of a finished forecast does
nothing and a re-run of an interrupted one completes it. Only failures that a retry can
cure (database or Redis unreachable) are retried; anything else marks the forecast failed
with its reason, and other forecasts go on.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from saas.db import Database
from saas.forecasting import service
from tenants.principal import Principal, Role

log = logging.getLogger("saas.workers.forecast")
RECOVERABLE = (OperationalError, InterfaceError, RedisConnectionError, ConnectionError,
               TimeoutError)
NIGHTLY_HORIZON = 3


async def run_forecast(ctx: dict[str, Any], *, tenant_id: str, forecast_id: str) -> str:
    db: Database = ctx["db"]
    now = ctx.get("clock", lambda: None)()
    try:
        return await service.run(db=db, tenant_id=uuid.UUID(tenant_id),
                                 forecast_id=uuid.UUID(forecast_id), now=now)
    except RECOVERABLE as e:
        tries = int(ctx.get("job_try", 1))
        if tries >= int(ctx.get("max_tries", 5)):
            await service.mark_failed(db=db, tenant_id=uuid.UUID(tenant_id),
                                      forecast_id=uuid.UUID(forecast_id),
                                      reason=f"gave up after {tries} tries: {e}")
            return "failed"
        log.warning("forecast %s: recoverable error, retrying: %s", forecast_id, e)
        raise Retry(defer=min(2 ** tries, 60)) from e
    except Exception as e:
        # A bug, not bad luck: record it so the forecast does not hang in 'running'.
        log.exception("forecast %s failed", forecast_id)
        await service.mark_failed(db=db, tenant_id=uuid.UUID(tenant_id),
                                  forecast_id=uuid.UUID(forecast_id),
                                  reason=f"internal error ({type(e).__name__}); reported")
        return "failed"


async def nightly_forecasts(ctx: dict[str, Any]) -> int:
    """Enqueue one job per tenant and pipeline, with a job id that makes re-runs no-ops."""
    db: Database = ctx["db"]
    day = datetime.now(UTC).date().isoformat()
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    count = 0
    for tenant_id in tenant_ids:
        async with db.unit_of_work(tenant_id) as uow:
            pipeline_ids: list[uuid.UUID] = list((await uow.session.execute(
                text("SELECT id FROM pipelines ORDER BY id"))).scalars())
        for pipeline_id in pipeline_ids:
            await ctx["redis"].enqueue_job(
                "nightly_forecast", tenant_id=str(tenant_id), pipeline_id=str(pipeline_id),
                day=day, _job_id=f"nightly-forecast:{tenant_id}:{pipeline_id}:{day}")
            count += 1
    return count


async def nightly_forecast(ctx: dict[str, Any], *, tenant_id: str, pipeline_id: str,
                           day: str) -> str:
    """Create (once per day) and compute the pipeline's nightly forecast."""
    db: Database = ctx["db"]
    tenant = uuid.UUID(tenant_id)
    key = f"nightly:{pipeline_id}:{day}"
    async with db.unit_of_work(tenant) as uow:
        existing = (await uow.session.execute(
            text("SELECT id FROM forecasts WHERE request_key = :k"), {"k": key})).scalar()
        if existing is None:
            system = Principal(tenant_id=tenant, role=Role.ADMIN)
            record = await service.request(
                uow=uow, principal=system, relay=None, enqueue=False,
                pipeline_id=uuid.UUID(pipeline_id),
                horizon_months=NIGHTLY_HORIZON, team_id=None, owner_id=None, origin="nightly",
                request_key=key)
            existing = record.id
    return await run_forecast(ctx, tenant_id=tenant_id, forecast_id=str(existing))
