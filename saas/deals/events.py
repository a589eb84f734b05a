"""The stage-event log: per-tenant sequence in commit order, appended in the move's transaction.

The sequence comes from a per-tenant counter row updated in the same transaction. The row
lock is held until commit, so a tenant's events get numbers in the order their
transactions commit, with no gaps (a rolled-back transaction rolls its number back too).
A bigserial would not do: a lower id can commit after a higher one and be skipped by a
reader following the cursor. Writers of one tenant serialise on that row only for the
tail of their transaction, because the event is appended last.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, text

from saas.db import UnitOfWork
from saas.deals.models import Deal, StageEvent
from tenants.principal import Principal

KINDS = ("created", "moved", "lost", "reopened", "updated", "transferred", "deleted",
         "restored")
# Kinds that are not a stage move: flow analytics, forecasts and campaigns skip them.
NOT_MOVES = ("updated", "deleted", "restored")
MAX_PAGE = 1000

_NEXT_SEQ = text(
    "INSERT INTO tenant_counters (tenant_id, event_seq) VALUES (:t, 1) "
    "ON CONFLICT (tenant_id) DO UPDATE SET event_seq = tenant_counters.event_seq + 1 "
    "RETURNING event_seq"
)


_APPEND = text(
    "WITH c AS (" + _NEXT_SEQ.text + ") "
    "INSERT INTO stage_events (tenant_id, seq, deal_id, pipeline_id, kind, from_stage_id, "
    "to_stage_id, from_pipeline_id, actor_user_id, actor_api_key_id, amount, currency, "
    "lost_reason, data) "
    "SELECT CAST(:t AS uuid), c.event_seq, CAST(:deal_id AS uuid), "
    "CAST(:pipeline_id AS uuid), CAST(:kind AS text), CAST(:from_stage_id AS uuid), "
    "CAST(:to_stage_id AS uuid), CAST(:from_pipeline_id AS uuid), "
    "CAST(:actor_user_id AS uuid), CAST(:actor_api_key_id AS uuid), "
    "CAST(:amount AS numeric), CAST(:currency AS text), CAST(:lost_reason AS text), "
    "CAST(:data AS jsonb) FROM c RETURNING seq, occurred_at"
)


async def next_seq(uow: UnitOfWork) -> int:
    return int((await uow.session.execute(_NEXT_SEQ, {"t": uow.tenant_id})).scalar_one())


async def append(
    uow: UnitOfWork,
    *,
    principal: Principal,
    deal: Deal,
    kind: str,
    from_stage_id: uuid.UUID | None,
    from_pipeline_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> StageEvent:
    """Record what just happened to `deal` (already updated) and queue its live message.

    The tenant's next number and the event's row in one statement (_APPEND): the counter
    row stays locked until COMMIT, so the fewer round trips after taking it, the more of a
    tenant's writers can commit per second."""
    await uow.session.flush()  # the deal's own changes first (the event refers to it)
    event = StageEvent(
        tenant_id=deal.tenant_id,
        deal_id=deal.id,
        pipeline_id=deal.pipeline_id,
        kind=kind,
        from_stage_id=from_stage_id,
        to_stage_id=deal.stage_id,
        from_pipeline_id=from_pipeline_id,
        actor_user_id=principal.user_id,
        actor_api_key_id=principal.api_key_id,
        amount=deal.amount,
        currency=deal.currency,
        lost_reason=deal.lost_reason if kind == "lost" else None,
        data=data or {},
    )
    row = (await uow.session.execute(_APPEND, {
        "t": deal.tenant_id, "deal_id": event.deal_id, "pipeline_id": event.pipeline_id,
        "kind": kind, "from_stage_id": from_stage_id, "to_stage_id": event.to_stage_id,
        "from_pipeline_id": from_pipeline_id, "actor_user_id": event.actor_user_id,
        "actor_api_key_id": event.actor_api_key_id, "amount": event.amount,
        "currency": event.currency, "lost_reason": event.lost_reason,
        "data": json.dumps(event.data)})).one()
    event.seq, event.occurred_at = row.seq, row.occurred_at  # a detached record of the row
    uow.publish({
        "tenant": str(deal.tenant_id),
        "pipeline": str(deal.pipeline_id),
        "from_pipeline": str(from_pipeline_id) if from_pipeline_id else None,
        "seq": event.seq,
        "kind": kind,
        "deal": str(deal.id),
    })
    return event


def after_query(*, after_seq: int, limit: int, pipeline_id: uuid.UUID | None = None,
                kinds: Sequence[str] | None = None) -> Select[StageEvent]:
    """Events with seq > after_seq, oldest first, at most min(limit, MAX_PAGE) (the one
    definition for `after` and the compiled stageEvents)."""
    query = select(StageEvent).where(StageEvent.seq > after_seq)
    if pipeline_id is not None:
        query = query.where(
            (StageEvent.pipeline_id == pipeline_id) | (StageEvent.from_pipeline_id == pipeline_id)
        )
    if kinds:
        query = query.where(StageEvent.kind.in_(list(kinds)))
    return query.order_by(StageEvent.seq).limit(min(limit, MAX_PAGE))


async def after(
    uow: UnitOfWork,
    *,
    after_seq: int,
    limit: int,
    pipeline_id: uuid.UUID | None = None,
    kinds: Sequence[str] | None = None,
) -> list[StageEvent]:
    """Events with seq > after_seq, oldest first (for cursors, replay and gap filling)."""
    rows = await uow.session.execute(after_query(after_seq=after_seq, limit=limit,
                                                 pipeline_id=pipeline_id, kinds=kinds))
    return list(rows.scalars())


async def history(uow: UnitOfWork, *, deal_id: uuid.UUID) -> list[StageEvent]:
    rows = await uow.session.execute(
        select(StageEvent).where(StageEvent.deal_id == deal_id).order_by(StageEvent.seq))
    return list(rows.scalars())
