"""Deleting a plan target (setting one is saas/planning/service.py's `set_target`)."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import NotFound
from tenants.principal import Principal
from tenants.scopes import Scope


async def delete_target(*, uow: UnitOfWork, principal: Principal,
                        target_id: uuid.UUID) -> uuid.UUID:
    """Remove the target; plan-fact then shows no target (and no attainment) for it."""
    principal.require(Scope.TARGETS_WRITE)
    gone = (await uow.session.execute(text("DELETE FROM targets WHERE id = :id RETURNING id"),
                                      {"id": target_id})).scalar_one_or_none()
    if gone is None:
        raise NotFound("target not found", field="targetId")
    return target_id
