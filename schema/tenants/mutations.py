"""Mutations of the tenants domain: thin — validate ids, call one service, map the result."""

from __future__ import annotations

import strawberry

from saas.errors import Unauthenticated
from schema.context import Info
from schema.errors import user_error
from schema.mutations import payload
from schema.nodes import decode_id
from schema.tenants.types import (
    ApiKey,
    ApiKeyPayload,
    ApiKeyScope,
    LoginPayload,
    Role,
    Team,
    TeamPayload,
    User,
    UserPayload,
)
from tenants import service
from tenants.credentials import issue_jwt
from tenants.principal import Role as DomainRole
from tenants.principal import Scope as DomainScope


@strawberry.input
class LoginInput:
    tenant: str = strawberry.field(description="The tenant's slug.")
    email: str
    password: str


@strawberry.input
class CreateTeamInput:
    name: str


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    role: Role  # type: ignore[valid-type]
    team_id: strawberry.ID | None = None
    password: str | None = None


@strawberry.input
class CreateApiKeyInput:
    name: str
    scope: ApiKeyScope  # type: ignore[valid-type]


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class TenantsMutation:
    @strawberry.mutation(description="Exchange email + password for a JWT (no IdP needed).")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        ctx = info.context
        try:
            principal = await service.login(
                db=ctx.db, tenant_slug=input.tenant, email=input.email, password=input.password
            )
        except Unauthenticated as e:
            return LoginPayload(errors=[user_error(e)])
        async with ctx.db.unit_of_work(principal.tenant_id) as uow:
            assert principal.user_id is not None
            user = await service.get_user(uow=uow, user_id=principal.user_id)
        return LoginPayload(
            token=issue_jwt(ctx.settings, principal),
            expires_in=ctx.settings.jwt_ttl_seconds,
            user=User.from_model(user),
        )

    @strawberry.mutation
    async def create_team(self, info: Info, input: CreateTeamInput) -> TeamPayload:
        principal = info.context.require_principal()

        async def act() -> TeamPayload:
            async with info.context.uow() as uow:
                team = await service.create_team(uow=uow, principal=principal, name=input.name)
                return TeamPayload(team=Team.from_model(team))

        return await payload(TeamPayload, act)

    @strawberry.mutation
    async def create_user(self, info: Info, input: CreateUserInput) -> UserPayload:
        principal = info.context.require_principal()

        async def act() -> UserPayload:
            team_id = decode_id(input.team_id, "Team", field="teamId") if input.team_id else None
            async with info.context.uow() as uow:
                user, initial = await service.create_user(
                    uow=uow, principal=principal, email=input.email, name=input.name,
                    role=DomainRole(input.role), team_id=team_id, password=input.password,
                )
                return UserPayload(
                    user=User.from_model(user),
                    initial_password=None if input.password else initial,
                )

        return await payload(UserPayload, act)

    @strawberry.mutation(description="Create a partner API key; its secret is returned once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeyPayload:
        principal = info.context.require_principal()

        async def act() -> ApiKeyPayload:
            async with info.context.uow() as uow:
                key, secret = await service.create_api_key(
                    uow=uow, principal=principal, name=input.name, scope=DomainScope(input.scope)
                )
                return ApiKeyPayload(api_key=ApiKey.from_model(key), secret=secret)

        return await payload(ApiKeyPayload, act)

    @strawberry.mutation
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        principal = info.context.require_principal()

        async def act() -> ApiKeyPayload:
            key_id = decode_id(input.id, "ApiKey", field="id")
            async with info.context.uow() as uow:
                key = await service.revoke_api_key(uow=uow, principal=principal, key_id=key_id)
                return ApiKeyPayload(api_key=ApiKey.from_model(key))

        return await payload(ApiKeyPayload, act)
