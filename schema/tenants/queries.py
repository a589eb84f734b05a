"""Queries of the tenants domain."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from sqlalchemy import select

from schema.context import Info
from schema.nodes import gid
from schema.tenants.types import ApiKey, Me, Team, Tenant, User
from tenants import keys, models, service
from tenants.scopes import Scope


@strawberry.type
class TenantsQuery:
    @strawberry.field(description="The caller: a user (JWT) or an API key, and its scopes.")
    async def me(self, info: Info) -> Me:
        principal = info.context.require_principal()
        user = None
        if principal.user_id is not None:
            async with info.context.uow() as uow:
                user = User.from_model(await service.get_user(uow=uow, user_id=principal.user_id))
        return Me(
            user=user, api_key_id=gid("ApiKey", principal.api_key_id),
            tenant_id=strawberry.ID(str(principal.tenant_id)),
            scopes=sorted(s.value for s in principal.granted),
            expires_at=datetime.fromtimestamp(principal.expires_at, UTC)
            if principal.expires_at else None,
        )

    @strawberry.field(description="The caller's tenant.")
    async def tenant(self, info: Info) -> Tenant:
        principal = info.context.require_principal()
        async with info.context.uow() as uow:
            tenant = await service.get_tenant(uow=uow, tenant_id=principal.tenant_id)
            return Tenant.from_model(tenant)

    @strawberry.field(description="The tenant's teams (deals:read: deals refer to them).")
    async def teams(self, info: Info) -> list[Team]:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            rows = await uow.session.execute(select(models.Team).order_by(models.Team.name))
            return [Team.from_model(t) for t in rows.scalars()]

    @strawberry.field(description="The tenant's users (deals:read: deals refer to them as "
                                  "owners); managing them needs users:admin.")
    async def users(self, info: Info) -> list[User]:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            rows = await uow.session.execute(
                select(models.User).order_by(models.User.name, models.User.id))
            return [User.from_model(u) for u in rows.scalars()]

    @strawberry.field(description="The tenant's API keys (users:admin); secrets are never "
                                  "shown.")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        principal = info.context.require(Scope.USERS_ADMIN)
        async with info.context.uow() as uow:
            return [ApiKey.from_model(k) for k in await keys.list_keys(uow=uow,
                                                                        principal=principal)]
