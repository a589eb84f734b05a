"""Who may edit which deal (on top of the `deals:write` scope, tenants/scopes.py).

- admin users, and API keys with `deals:write`: every deal of the tenant;
- manager: deals owned by themselves or by members of their team, and unowned deals;
- rep: only deals they own (they may create deals, owned by themselves).
Everyone in the tenant with `deals:read` (every role, read keys) reads every deal.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.deals.models import Deal
from saas.errors import Forbidden
from tenants.principal import Principal, Role
from tenants.scopes import Scope


async def _team_of(uow: UnitOfWork, user_id: uuid.UUID) -> uuid.UUID | None:
    row = await uow.session.execute(text("SELECT team_id FROM users WHERE id = :u"), {"u": user_id})
    return row.scalar_one_or_none()


async def require_edit(uow: UnitOfWork, principal: Principal, deal: Deal) -> None:
    principal.require(Scope.DEALS_WRITE)
    if principal.is_api_key or principal.role == Role.ADMIN:
        return
    if deal.owner_id == principal.user_id:
        return
    if principal.role == Role.MANAGER:
        if deal.owner_id is None:
            return
        owner_team = await _team_of(uow, deal.owner_id)
        if principal.team_id is not None and owner_team == principal.team_id:
            return
        raise Forbidden("managers edit only their team's deals")
    raise Forbidden("reps edit only their own deals")


async def require_assign(uow: UnitOfWork, principal: Principal, owner_id: uuid.UUID | None) -> None:
    """May the caller give a deal to `owner_id`?"""
    if principal.is_api_key or principal.role == Role.ADMIN or owner_id == principal.user_id:
        return
    if principal.role == Role.MANAGER and (
        owner_id is None
        or (principal.team_id is not None and await _team_of(uow, owner_id) == principal.team_id)
    ):
        return
    raise Forbidden("you may not assign deals to this user", field="ownerId")
