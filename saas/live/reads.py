"""The live hub's read from the event log: a page of events after a cursor, with the
current card of each event's deal (title, amount, stage, owner's name), in one unit of work
under the tenant. The hub coalesces identical concurrent reads (saas.live.hub.Hub.fetch)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from saas.db import Database
from saas.deals import events as event_log
from saas.deals.models import Deal
from saas.live.delivered import Batch, Card, Delivered
from tenants.models import User


async def read_after(db: Database, tenant_id: uuid.UUID, pipeline_id: uuid.UUID | None,
                     after_seq: int, kinds: Sequence[str] | None, *, limit: int) -> Batch:
    """Up to `limit` events after `after_seq` (of one pipeline, and of some kinds, if given)."""
    async with db.unit_of_work(tenant_id) as uow:
        rows = await event_log.after(uow, after_seq=after_seq, limit=limit,
                                     pipeline_id=pipeline_id, kinds=kinds)
        cards: dict[uuid.UUID, Card] = {}
        deal_ids = {e.deal_id for e in rows}
        if deal_ids:
            result = await uow.session.execute(
                select(Deal.id, Deal.title, Deal.amount, Deal.currency, Deal.temperature,
                       Deal.version, Deal.stage_id, Deal.pipeline_id, Deal.owner_id,
                       User.name)
                .outerjoin(User, (User.tenant_id == Deal.tenant_id)
                           & (User.id == Deal.owner_id))
                .where(Deal.id.in_(deal_ids)))
            for r in result:
                cards[r[0]] = Card(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
    return Batch(rows, cards, [Delivered(e, cards.get(e.deal_id)) for e in rows])
