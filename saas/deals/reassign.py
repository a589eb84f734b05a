"""Hand a leaving user's open deals to someone else (each with its `updated` event)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from saas.db import UnitOfWork
from saas.deals import events
from saas.deals.models import Deal
from saas.deals.service import changed_data, history_value
from saas.pipelines.models import Stage
from tenants.principal import Principal
from tenants.scopes import Scope


async def reassign_open_deals(*, uow: UnitOfWork, principal: Principal, from_user: uuid.UUID,
                              to_user: uuid.UUID) -> int:
    """Open deals (in an open stage) of `from_user` now belong to `to_user`; won and lost
    deals keep their owner (plan-fact attributes them to who closed them)."""
    principal.require(Scope.DEALS_WRITE)
    deals = list((await uow.session.execute(
        select(Deal).join(Stage, (Stage.tenant_id == Deal.tenant_id) & (Stage.id == Deal.stage_id))
        .where(Deal.owner_id == from_user, Stage.kind == "open", Deal.archived_at.is_(None))
        .order_by(Deal.id).with_for_update(of=Deal))).scalars())
    for deal in deals:
        changes = {"owner_id": {"from": history_value(deal.owner_id),
                                "to": history_value(to_user)}}
        deal.owner_id = to_user
        deal.version += 1
        deal.updated_at = func.now()
        await uow.session.flush()
        await uow.session.refresh(deal)
        await events.append(uow, principal=principal, deal=deal, kind="updated",
                            from_stage_id=deal.stage_id, data=changed_data(changes))
    return len(deals)
