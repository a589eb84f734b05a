"""Mutations that administer the tenant (users:admin): teams, users, invitations, API keys.
Each checks its scope before looking at the input."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from schema.context import Info
from schema.mutations import payload
from schema.nodes import decode_id
from schema.tenants.types import (
    ApiKey,
    ApiKeyPayload,
    DeactivateUserPayload,
    InvitationPayload,
    Role,
    Team,
    TeamPayload,
    User,
    UserPayload,
)
from tenants import keys, recovery, service, users
from tenants.principal import Role as DomainRole
from tenants.scopes import Scope


@strawberry.input
class CreateTeamInput:
    name: str


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    role: Role  # type: ignore[valid-type]
    team_id: strawberry.ID | None = None
    password: str | None = strawberry.field(
        default=None, description="Omit to have one generated (returned once); or invite.")


@strawberry.input
class InviteUserInput:
    email: str
    name: str
    role: Role  # type: ignore[valid-type]
    team_id: strawberry.ID | None = None


@strawberry.input
class UpdateUserInput:
    user_id: strawberry.ID
    name: str | None = strawberry.UNSET
    role: Role | None = strawberry.UNSET  # type: ignore[valid-type]
    team_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null removes the user from their team.")


@strawberry.input
class DeactivateUserInput:
    user_id: strawberry.ID
    reassign_deals_to: strawberry.ID | None = strawberry.field(
        default=None, description="Give the user's open deals to this user in the same "
                                  "transaction.")


@strawberry.input
class UserRefInput:
    user_id: strawberry.ID


@strawberry.input
class CreateApiKeyInput:
    name: str
    scopes: list[str] = strawberry.field(
        description="Scope names (deals:read, ...) or aliases (read, read_write, admin); never "
                    "more than you hold.")
    expires_at: datetime | None = None


@strawberry.input
class RotateApiKeyInput:
    id: strawberry.ID
    grace_period_seconds: int = strawberry.field(
        default=3600, description="How long the current secret keeps working.")


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


def _team(value: Any) -> Any:
    if value is strawberry.UNSET:
        return users.UNSET
    return decode_id(value, "Team", field="input.teamId") if value else None


@strawberry.type
class AdminMutation:
    @strawberry.mutation
    async def create_team(self, info: Info, input: CreateTeamInput) -> TeamPayload:
        principal = info.context.require_principal()

        async def act() -> TeamPayload:
            principal.require(Scope.USERS_ADMIN)
            async with info.context.uow() as uow:
                team = await service.create_team(uow=uow, principal=principal, name=input.name)
            return TeamPayload(team=Team.from_model(team))

        return await payload(TeamPayload, act)

    @strawberry.mutation(description="Add a user with a password (or a generated one).")
    async def create_user(self, info: Info, input: CreateUserInput) -> UserPayload:
        principal = info.context.require_principal()

        async def act() -> UserPayload:
            principal.require(Scope.USERS_ADMIN)
            team_id = decode_id(input.team_id, "Team", field="teamId") if input.team_id else None
            async with info.context.uow() as uow:
                user, initial = await users.create(
                    uow=uow, principal=principal, email=input.email, name=input.name,
                    role=DomainRole(input.role), team_id=team_id, password=input.password)
            return UserPayload(user=User.from_model(user), initial_password=initial)

        return await payload(UserPayload, act)

    @strawberry.mutation(description="Add a user who chooses their password through an "
                                     "e-mailed link (single use, expires).")
    async def invite_user(self, info: Info, input: InviteUserInput) -> InvitationPayload:
        principal = info.context.require_principal()

        async def act() -> InvitationPayload:
            principal.require(Scope.USERS_ADMIN)
            team_id = decode_id(input.team_id, "Team", field="input.teamId") \
                if input.team_id else None
            async with info.context.uow() as uow:
                user, expires_at = await recovery.invite(
                    uow=uow, principal=principal, settings=info.context.settings,
                    email=input.email, name=input.name, role=DomainRole(input.role),
                    team_id=team_id)
            return InvitationPayload(user=User.from_model(user), expires_at=expires_at)

        return await payload(InvitationPayload, act)

    @strawberry.mutation(description="Change a user's name, role or team; applies to their "
                                     "next request, and a lower role closes their websockets.")
    async def update_user(self, info: Info, input: UpdateUserInput) -> UserPayload:
        principal = info.context.require_principal()

        async def act() -> UserPayload:
            principal.require(Scope.USERS_ADMIN)
            user_id = decode_id(input.user_id, "User", field="input.userId")
            role = input.role
            async with info.context.uow() as uow:
                user = await users.update(
                    uow=uow, principal=principal, user_id=user_id,
                    name=users.UNSET if input.name is strawberry.UNSET else input.name,
                    role=users.UNSET if role is strawberry.UNSET or role is None
                    else DomainRole(role),
                    team_id=_team(input.team_id))
            return UserPayload(user=User.from_model(user))

        return await payload(UserPayload, act)

    @strawberry.mutation(description="The user can no longer log in; their sessions and "
                                     "websockets end now; optionally hand over open deals.")
    async def deactivate_user(self, info: Info,
                              input: DeactivateUserInput) -> DeactivateUserPayload:
        principal = info.context.require_principal()

        async def act() -> DeactivateUserPayload:
            principal.require(Scope.USERS_ADMIN)
            user_id = decode_id(input.user_id, "User", field="input.userId")
            heir = decode_id(input.reassign_deals_to, "User", field="input.reassignDealsTo") \
                if input.reassign_deals_to else None
            async with info.context.uow() as uow:
                done = await users.deactivate(uow=uow, principal=principal, user_id=user_id,
                                              reassign_to=heir)
            return DeactivateUserPayload(user=User.from_model(done.user),
                                         sessions_ended=done.sessions_ended,
                                         deals_reassigned=done.deals_reassigned)

        return await payload(DeactivateUserPayload, act)

    @strawberry.mutation
    async def reactivate_user(self, info: Info, input: UserRefInput) -> UserPayload:
        principal = info.context.require_principal()

        async def act() -> UserPayload:
            principal.require(Scope.USERS_ADMIN)
            user_id = decode_id(input.user_id, "User", field="input.userId")
            async with info.context.uow() as uow:
                user = await users.reactivate(uow=uow, principal=principal, user_id=user_id)
            return UserPayload(user=User.from_model(user))

        return await payload(UserPayload, act)

    @strawberry.mutation(description="Create a partner API key; its secret is returned once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeyPayload:
        principal = info.context.require_principal()

        async def act() -> ApiKeyPayload:
            principal.require(Scope.USERS_ADMIN)
            async with info.context.uow() as uow:
                key, secret = await keys.create(uow=uow, principal=principal, name=input.name,
                                                scope_names=input.scopes,
                                                expires_at=input.expires_at)
            return ApiKeyPayload(api_key=ApiKey.from_model(key), secret=secret)

        return await payload(ApiKeyPayload, act)

    @strawberry.mutation(description="A new secret for a key (returned once); the current "
                                     "one keeps working for the grace period.")
    async def rotate_api_key(self, info: Info, input: RotateApiKeyInput) -> ApiKeyPayload:
        principal = info.context.require_principal()

        async def act() -> ApiKeyPayload:
            principal.require(Scope.USERS_ADMIN)
            key_id = decode_id(input.id, "ApiKey", field="input.id")
            async with info.context.uow() as uow:
                key, secret = await keys.rotate(uow=uow, principal=principal,
                                                settings=info.context.settings, key_id=key_id,
                                                grace_seconds=input.grace_period_seconds)
            return ApiKeyPayload(api_key=ApiKey.from_model(key), secret=secret)

        return await payload(ApiKeyPayload, act)

    @strawberry.mutation(description="Revoke a key now: refused from the next request, its "
                                     "websockets closed on every process.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        principal = info.context.require_principal()

        async def act() -> ApiKeyPayload:
            principal.require(Scope.USERS_ADMIN)
            key_id = decode_id(input.id, "ApiKey", field="input.id")
            async with info.context.uow() as uow:
                key = await keys.revoke(uow=uow, principal=principal, key_id=key_id)
            return ApiKeyPayload(api_key=ApiKey.from_model(key))

        return await payload(ApiKeyPayload, act)
