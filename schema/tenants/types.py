"""GraphQL types of tenants, users, teams and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from schema.context import Info
from schema.errors import UserError
from schema.loaders import by_id
from tenants import models
from tenants.principal import Role as DomainRole
from tenants.principal import Scope as DomainScope

Role = strawberry.enum(DomainRole, name="Role")
ApiKeyScope = strawberry.enum(DomainScope, name="ApiKeyScope")




@strawberry.type
class Tenant:
    id: strawberry.ID
    slug: str
    name: str
    base_currency: str
    timezone: str

    @classmethod
    def from_model(cls, m: models.Tenant) -> Tenant:
        return cls(id=strawberry.ID(str(m.id)), slug=m.slug, name=m.name,
                   base_currency=m.base_currency, timezone=m.timezone)


@strawberry.type
class Team(relay.Node):
    id: relay.NodeID[str]
    name: str

    @classmethod
    def from_model(cls, m: models.Team) -> Team:
        return cls(id=str(m.id), name=m.name)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Team | None]:
        rows = await by_id(info, models.Team).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[str]
    email: str
    name: str
    role: Role  # type: ignore[valid-type]
    team_id: strawberry.ID | None
    is_active: bool

    @classmethod
    def from_model(cls, m: models.User) -> User:
        return cls(id=str(m.id), email=m.email, name=m.name, role=DomainRole(m.role),
                   team_id=strawberry.ID(str(relay.GlobalID("Team", str(m.team_id))))
                   if m.team_id else None,
                   is_active=m.is_active)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        rows = await by_id(info, models.User).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class ApiKey(relay.Node):
    id: relay.NodeID[str]
    name: str
    scope: ApiKeyScope  # type: ignore[valid-type]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_model(cls, m: models.ApiKey) -> ApiKey:
        return cls(id=str(m.id), name=m.name, scope=DomainScope(m.scope),
                   created_at=m.created_at, revoked_at=m.revoked_at,
                   last_used_at=m.last_used_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ApiKey | None]:
        rows = await by_id(info, models.ApiKey).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class Me:
    user: User | None
    api_key_id: strawberry.ID | None
    tenant_id: strawberry.ID
    scopes: list[ApiKeyScope]  # type: ignore[valid-type]


@strawberry.type
class LoginPayload:
    token: str | None = None
    expires_in: int | None = None
    user: User | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TeamPayload:
    team: Team | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UserPayload:
    user: User | None = None
    initial_password: str | None = strawberry.field(
        default=None, description="Shown once when generated; ask the user to change it."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(
        default=None, description="The key itself, shown only on creation."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)
