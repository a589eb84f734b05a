"""Team mutations after creation: rename, delete when empty (users:admin)."""

from __future__ import annotations

import strawberry

from schema.context import Info
from schema.mutations import DeletedPayload, payload
from schema.nodes import decode_id, gid
from schema.tenants.types import Team, TeamPayload
from tenants import teams
from tenants.scopes import Scope


@strawberry.input
class RenameTeamInput:
    team_id: strawberry.ID
    name: str


@strawberry.input(description="Only a team nobody belongs to; its targets go with it.")
class DeleteTeamInput:
    team_id: strawberry.ID


@strawberry.type
class TeamsMutation:
    @strawberry.mutation
    async def rename_team(self, info: Info, input: RenameTeamInput) -> TeamPayload:
        principal = info.context.require_principal()

        async def act() -> TeamPayload:
            principal.require(Scope.USERS_ADMIN)
            team_id = decode_id(input.team_id, "Team", field="teamId")
            async with info.context.uow() as uow:
                team = await teams.rename(uow=uow, principal=principal, team_id=team_id,
                                          name=input.name)
            return TeamPayload(team=Team.from_model(team))

        return await payload(TeamPayload, act)

    @strawberry.mutation
    async def delete_team(self, info: Info, input: DeleteTeamInput) -> DeletedPayload:
        principal = info.context.require_principal()

        async def act() -> DeletedPayload:
            principal.require(Scope.USERS_ADMIN)
            team_id = decode_id(input.team_id, "Team", field="teamId")
            async with info.context.uow() as uow:
                gone = await teams.delete(uow=uow, principal=principal, team_id=team_id)
            return DeletedPayload(deleted_id=gid("Team", gone))

        return await payload(DeletedPayload, act)
