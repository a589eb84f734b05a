"""The transactional outbox: a job is written in the same transaction as the change that
needs it, then relayed to arq; Redis being down never fails the change nor loses the job.

- `add(uow, relay, ...)` inserts a `job_outbox` row in the caller's unit of work and, after
  commit, asks `relay` to enqueue it at once (bounded by OUTBOX_RELAY_TIMEOUT_SECONDS;
  any failure is logged at WARNING and the row simply waits).
- `Relay.sweep()` enqueues every waiting row of every tenant; the worker process runs it
  every OUTBOX_SWEEP_SECONDS (workers/outbox.py), so jobs committed during a Redis outage
  are enqueued once Redis is back.

A row is deleted in the transaction that enqueues it: if the enqueue fails the delete rolls
back; if the commit fails after the enqueue, the row is relayed again, and arq's job id
(deterministic: `forecast:<id>`, `import:<id>`, ...) makes the second enqueue a no-op while
the job is queued, running or its result kept. Every job is idempotent besides (it moves
its record queued -> done once), so at-least-once relaying gives exactly-once effects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import text

from saas.db import Database, UnitOfWork

log = logging.getLogger("saas.outbox")
BATCH = 100


class Queue(Protocol):
    async def enqueue_job(self, function: str, *args: Any, **kwargs: Any) -> Any: ...


QueueSource = Callable[[], Awaitable[Queue]]

_CLAIM = text(
    "DELETE FROM job_outbox WHERE id IN (SELECT id FROM job_outbox "
    "WHERE (CAST(:id AS bigint) IS NULL OR id = :id) ORDER BY id LIMIT :n "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING id, function, job_id, kwargs")


class Relay:
    """Moves outbox rows into arq. `queue` opens (or returns) the arq pool."""

    def __init__(self, db: Database, queue: QueueSource, *, timeout: float = 1.0) -> None:
        self.db = db
        self.queue = queue
        self.timeout = timeout

    async def _relay(self, tenant_id: uuid.UUID, row_id: int | None) -> int:
        async with self.db.unit_of_work(tenant_id) as uow:
            rows = (await uow.session.execute(
                _CLAIM, {"id": row_id, "n": 1 if row_id is not None else BATCH})).all()
            if not rows:
                return 0
            queue = await self.queue()
            for row in sorted(rows, key=lambda r: r.id):
                kwargs = row.kwargs if isinstance(row.kwargs, dict) else json.loads(row.kwargs)
                await queue.enqueue_job(row.function, _job_id=row.job_id, **kwargs)
        return len(rows)

    async def now(self, tenant_id: uuid.UUID, row_id: int) -> None:
        """After commit: enqueue this row now if Redis answers in time; else it waits for
        the sweeper. Never raises (the change it belongs to has committed)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._relay(tenant_id, row_id)
        except Exception as e:
            log.warning("job %s of tenant %s stays in the outbox for the sweeper (%s: %s)",
                        row_id, tenant_id, type(e).__name__, e)

    async def sweep(self) -> int:
        """Enqueue every waiting job of every tenant; the number enqueued. A tenant whose
        relay fails (Redis down) keeps its rows for the next sweep."""
        async with self.db.unit_of_work(None) as uow:
            tenants: list[uuid.UUID] = list((await uow.session.execute(
                text("SELECT id FROM job_outbox_tenants()"))).scalars())
        relayed = 0
        for tenant_id in tenants:
            while True:
                count = await self._relay(tenant_id, None)
                relayed += count
                if count < BATCH:
                    break
        return relayed


async def add(uow: UnitOfWork, relay: Relay | None, *, function: str, job_id: str,
              **kwargs: Any) -> None:
    """Write the job beside the change (same transaction); relay it after commit."""
    tenant_id = uow.tenant_id
    if tenant_id is None:
        raise ValueError("an outbox job belongs to a tenant's unit of work")
    row_id: int = (await uow.session.execute(text(
        "INSERT INTO job_outbox (tenant_id, function, job_id, kwargs) "
        "VALUES (:t, :f, :j, CAST(:k AS jsonb)) RETURNING id"),
        {"t": tenant_id, "f": function, "j": job_id, "k": json.dumps(kwargs)})).scalar_one()
    if relay is not None:
        uow.after_commit(lambda: relay.now(tenant_id, row_id))
