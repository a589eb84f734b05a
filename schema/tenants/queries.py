"""Queries of the tenants domain."""

from __future__ import annotations

import strawberry
from sqlalchemy import select
from strawberry.relay import GlobalID

from schema.context import Info
from schema.tenants.types import ApiKey, Me, Team, Tenant, User
from tenants import models, service


@strawberry.type
class TenantsQuery:
    @strawberry.field(description="The caller: a user (JWT) or an API key.")
    async def me(self, info: Info) -> Me:
        principal = info.context.require_principal()
        user = None
        if principal.user_id is not None:
            async with info.context.uow() as uow:
                user = User.from_model(await service.get_user(uow=uow, user_id=principal.user_id))
        return Me(
            user=user,
            api_key_id=strawberry.ID(str(GlobalID("ApiKey", str(principal.api_key_id))))
            if principal.api_key_id else None,
            tenant_id=strawberry.ID(str(principal.tenant_id)),
            scopes=sorted(principal.scopes),
        )

    @strawberry.field(description="The caller's tenant.")
    async def tenant(self, info: Info) -> Tenant:
        principal = info.context.require_principal()
        async with info.context.uow() as uow:
            tenant = await service.get_tenant(uow=uow, tenant_id=principal.tenant_id)
            return Tenant.from_model(tenant)

    @strawberry.field
    async def teams(self, info: Info) -> list[Team]:
        async with info.context.uow() as uow:
            rows = await uow.session.execute(
                select(models.Team).order_by(models.Team.name)
            )
            return [Team.from_model(t) for t in rows.scalars()]

    @strawberry.field
    async def users(self, info: Info) -> list[User]:
        async with info.context.uow() as uow:
            rows = await uow.session.execute(
                select(models.User).order_by(models.User.name, models.User.id)
            )
            return [User.from_model(u) for u in rows.scalars()]

    @strawberry.field(description="The tenant's API keys (admins only); secrets are never shown.")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        principal = info.context.require_principal()
        async with info.context.uow() as uow:
            keys = await service.list_api_keys(uow=uow, principal=principal)
            return [ApiKey.from_model(k) for k in keys]
