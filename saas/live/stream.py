"""One subscription's event stream: replay from the log, then live, never lost or doubled.

The algorithm (see docs/live.md):
1. register with the hub first, so nothing committed from now on goes unnoticed;
2. replay every event after the client's cursor from PostgreSQL (pages, under the
   principal's tenant); without a cursor start at the tenant's current head;
3. then wait for wake-ups. A wake-up (or a hub catch-up) whose sequence is beyond what
   we have covered makes us read the log after the last delivered sequence again, so
   events always come out in sequence order, exactly once, with gaps filled from the
   database; a duplicated or stale notification is skipped by sequence;
4. if the subscriber's queue overflowed (the client is not reading), yield a
   ResyncRequired carrying the last delivered cursor and end the stream.

With a `direct` writer (the websocket transport's), a stream that has caught up joins
its (tenant, pipeline, kinds) fan-out group instead of waiting for wake-ups: the group's
one task reads each new event once and writes it to every member. When the group hands
it back (its client fell behind, a result needs the usual path, the group's read
failed), the stream first waits for the write in flight, then carries on from step 3
after the last event written, so the hand-over in either direction never loses,
repeats or reorders an event.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from saas.deals.models import StageEvent
from saas.errors import NotFound
from saas.live.delivered import Delivered
from saas.live.hub import CATCH_UP, Hub
from saas.live.subscribers import Direct
from saas.observability.metrics import EVENTS_FANNED_OUT
from saas.pipelines.models import Pipeline
from tenants.principal import Principal

log = logging.getLogger("saas.live")


__all__ = ["Delivered", "Resync", "head", "require_pipeline", "stream"]


@dataclass(frozen=True)
class Resync:
    reason: str
    last_seq: int


async def require_pipeline(hub: Hub, principal: Principal, pipeline_id: uuid.UUID) -> None:
    """The pipeline must be the caller's; anything else is 'not found' (never 'forbidden')."""
    assert hub.db is not None
    async with hub.db.unit_of_work(principal.tenant_id) as uow:
        found = await uow.session.scalar(
            select(Pipeline.id).where(Pipeline.id == pipeline_id,
                                      Pipeline.tenant_id == principal.tenant_id))
    if found is None:
        raise NotFound("pipeline not found", field="pipelineId")


async def head(hub: Hub, tenant_id: uuid.UUID) -> int:
    """The tenant's latest event sequence (0 when it has none)."""
    assert hub.db is not None
    async with hub.db.unit_of_work(tenant_id) as uow:
        value = await uow.session.scalar(
            select(func.coalesce(func.max(StageEvent.seq), 0))
            .where(StageEvent.tenant_id == tenant_id))
    return int(value or 0)


async def stream(
    hub: Hub,
    principal: Principal,
    pipeline_id: uuid.UUID | None,
    after_seq: int | None,
    kinds: Sequence[str] | None = None,
    direct: Direct | None = None,
) -> AsyncIterator[Delivered | Resync]:
    tenant = principal.tenant_id
    if pipeline_id is not None:
        await require_pipeline(hub, principal, pipeline_id)
    sub = hub.subscribe(tenant, pipeline_id)
    try:
        last = await head(hub, tenant) if after_seq is None else max(after_seq, 0)
        covered = last  # every matching event with seq <= covered has been delivered
        pending = True  # replay first
        refused_at = -1  # the group was ahead of us at this `last`: read on our own
        while True:
            if sub.overflowed:
                yield Resync("subscriber queue overflowed: the client is not keeping up",
                             last)
                return
            if not pending and direct is not None and refused_at != last:
                member = hub.join(sub, direct, last, covered, kinds)
                if member is None:
                    refused_at = last  # read up to the group first (or wait as usual)
                    pending = True
                    continue
                try:
                    in_flight = await member.returned
                finally:
                    hub.leave(member)
                if in_flight is not None:
                    await in_flight  # the last write, before anything we send
                last = member.last
                covered = max(covered, last)
                pending = True
                continue
            if not pending:
                wakes = [await sub.queue.get(), *sub.queue.drain()]
                if sub.overflowed:
                    continue
                target = max(wakes)
                if CATCH_UP not in wakes and target <= covered:
                    continue  # stale or duplicate notification: already delivered
                covered = max(covered, target)
            pending = False
            # Read the log after the last delivered event until it is exhausted.
            while True:
                batch = await hub.fetch(tenant, pipeline_id, last, kinds)
                for item in batch.delivered:  # shared with the other readers of this page
                    event = item.event
                    if event.tenant_id != tenant:  # RLS guarantees it; check anyway
                        log.error("live: dropped another tenant's event (seq %s)", event.seq)
                        continue
                    if event.seq <= last:
                        continue
                    last = event.seq
                    covered = max(covered, last)
                    EVENTS_FANNED_OUT.inc()
                    yield item
                if len(batch.events) < hub.page_size:
                    break
    finally:
        hub.unsubscribe(sub)
