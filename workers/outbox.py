"""The outbox sweeper inside the arq worker process (saas/outbox.py), and the net for jobs
Redis lost after they were relayed.

The sweeper is not an arq job: arq's own loop waits while Redis is away, and the sweeper
must be the thing that runs once Redis is back. It runs beside arq's job loop as a task,
started and stopped with it, every OUTBOX_SWEEP_SECONDS, with its own fail-fast pool.

`requeue_stale` (every minute, an arq cron) covers the other gap: a job that was enqueued
but that Redis then lost (a restart without persistence). Forecasts, imports and exports
still `queued` two minutes after they were requested and with no row in the outbox are
enqueued again under their deterministic job ids (a no-op for a job arq still holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from arq import ArqRedis
from sqlalchemy import text

from saas import jobs
from saas.db import Database
from saas.exports import service as exports
from saas.forecasting import service as forecasts
from saas.imports import service as imports
from saas.outbox import Relay
from saas.settings import Settings

log = logging.getLogger("saas.workers.outbox")


@dataclass
class Sweeper:
    relay: Relay
    every: float
    stopping: asyncio.Event
    pool: ArqRedis | None = None
    relayed: int = 0

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.relayed += await self.relay.sweep()
            except Exception as e:
                log.warning("outbox sweep failed (%s: %s); next in %.1f s", type(e).__name__,
                            e, self.every)
                await self._drop_pool()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.every)
        await self._drop_pool()

    async def _drop_pool(self) -> None:
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.aclose()
            self.pool = None


@dataclass
class Running:
    sweeper: Sweeper
    task: asyncio.Task[None]


def start(db: Database, settings: Settings) -> Running:
    stopping = asyncio.Event()
    sweeper: Sweeper

    async def queue() -> ArqRedis:
        if sweeper.pool is None:
            sweeper.pool = await jobs.connect(settings)
        return sweeper.pool

    sweeper = Sweeper(Relay(db, queue, timeout=settings.outbox_relay_timeout_seconds),
                      settings.outbox_sweep_seconds, stopping)
    return Running(sweeper, asyncio.create_task(sweeper.run()))


async def stop(running: Running) -> None:
    running.sweeper.stopping.set()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(running.task, 10)


_STALE = "status = 'queued' AND created_at < now() - interval '2 minutes'"


async def requeue_stale(ctx: dict[str, Any]) -> int:
    db: Database = ctx["db"]
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    count = 0
    for tenant_id in tenant_ids:
        async with db.unit_of_work(tenant_id) as uow:
            if (await uow.session.execute(text("SELECT EXISTS (SELECT 1 FROM job_outbox)"))
                    ).scalar_one():
                continue  # the sweeper has not relayed this tenant's jobs yet
            stale = {table: list((await uow.session.execute(text(
                f"SELECT id FROM {table} WHERE {_STALE}"))).scalars())
                for table in ("forecasts", "imports", "exports")}
        t = str(tenant_id)
        for i in stale["forecasts"]:
            await ctx["redis"].enqueue_job(forecasts.JOB, tenant_id=t, forecast_id=str(i),
                                           _job_id=forecasts.job_id(i))
        for i in stale["imports"]:
            await ctx["redis"].enqueue_job(imports.JOB, tenant_id=t, import_id=str(i),
                                           _job_id=imports.job_id(i))
        for i in stale["exports"]:
            await ctx["redis"].enqueue_job(exports.JOB, tenant_id=t, export_id=str(i),
                                           _job_id=exports.job_id(i))
        count += sum(len(v) for v in stale.values())
    return count
