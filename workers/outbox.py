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


# Table, job function, job id, the job's keyword for the record's id.
_JOBS = (("forecasts", forecasts.JOB, forecasts.job_id, "forecast_id"),
         ("imports", imports.JOB, imports.job_id, "import_id"),
         ("exports", exports.JOB, exports.job_id, "export_id"))
# One statement per tenant: nothing when the tenant still has jobs in the outbox (the
# sweeper has not relayed them yet), else its records queued for over two minutes.
_STALE = text(" UNION ALL ".join(
    f"SELECT '{table}' AS kind, id FROM {table} WHERE status = 'queued' "
    "AND created_at < now() - interval '2 minutes' "
    "AND NOT EXISTS (SELECT 1 FROM job_outbox)" for table, *_ in _JOBS))


async def requeue_stale(ctx: dict[str, Any]) -> int:
    db: Database = ctx["db"]
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    jobs = {table: (function, job_id, key) for table, function, job_id, key in _JOBS}
    count = 0
    for tenant_id in tenant_ids:
        async with db.unit_of_work(tenant_id) as uow:
            stale = list(await uow.session.execute(_STALE))
        for row in stale:
            function, job_id, key = jobs[row.kind]
            await ctx["redis"].enqueue_job(function, tenant_id=str(tenant_id),
                                           _job_id=job_id(row.id), **{key: str(row.id)})
        count += len(stale)
    return count
