"""Teams after creation: rename, and delete once nobody belongs to it (its targets go too:
a plan for a team that no longer exists measures nothing). Both audited."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.errors import Conflict, NotFound, ValidationFailed
from tenants import audit
from tenants.models import Team
from tenants.principal import Principal
from tenants.scopes import Scope


async def _get(uow: UnitOfWork, team_id: uuid.UUID) -> Team:
    team = (await uow.session.execute(
        select(Team).where(Team.id == team_id).with_for_update())).scalar_one_or_none()
    if team is None:
        raise NotFound("team not found", field="teamId")
    return team


async def rename(*, uow: UnitOfWork, principal: Principal, team_id: uuid.UUID,
                 name: str) -> Team:
    principal.require(Scope.USERS_ADMIN)
    team = await _get(uow, team_id)
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("team name must be 1-200 characters", field="name")
    old = team.name
    try:
        async with uow.session.begin_nested():
            team.name = name
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a team named {name!r} already exists", field="name") from e
    await audit.record(uow, principal, "team.renamed", target=("Team", team.id),
                       details={"from": old, "to": name})
    return team


async def delete(*, uow: UnitOfWork, principal: Principal, team_id: uuid.UUID) -> uuid.UUID:
    principal.require(Scope.USERS_ADMIN)
    team = await _get(uow, team_id)
    members = int((await uow.session.execute(text(
        "SELECT count(*) FROM users WHERE team_id = :t"), {"t": team.id})).scalar_one())
    if members:
        raise Conflict(f"the team still has {members} member(s), active or deactivated: "
                       "move them to another team first", field="teamId")
    await uow.session.execute(text("DELETE FROM targets WHERE team_id = :t"), {"t": team.id})
    await uow.session.delete(team)
    await uow.session.flush()
    await audit.record(uow, principal, "team.deleted", target=("Team", team.id),
                       details={"name": team.name})
    return team.id
