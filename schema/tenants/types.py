"""GraphQL types of tenants, users, teams, API keys and sessions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from schema.context import Info
from schema.errors import UserError
from schema.loaders import by_id
from schema.nodes import gid
from tenants import models
from tenants.principal import Role as DomainRole

Role = strawberry.enum(DomainRole, name="Role")


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
                   team_id=gid("Team", m.team_id), is_active=m.is_active)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        rows = await by_id(info, models.User).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(description="A partner app's key. Its secret is shown once, on creation "
                             "or rotation, and never stored.")
class ApiKey(relay.Node):
    id: relay.NodeID[str]
    name: str
    scopes: list[str] = strawberry.field(description="Scope names (docs/access.md).")
    created_at: datetime
    created_by_user_id: strawberry.ID | None
    created_by_api_key_id: strawberry.ID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="Updated at most once a minute.")
    last_used_address: str | None
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation, the previous secret works until then.")

    @classmethod
    def from_model(cls, m: models.ApiKey) -> ApiKey:
        return cls(id=str(m.id), name=m.name, scopes=sorted(m.scopes),
                   created_at=m.created_at, created_by_user_id=gid("User", m.created_by),
                   created_by_api_key_id=gid("ApiKey", m.created_by_api_key),
                   expires_at=m.expires_at, revoked_at=m.revoked_at,
                   last_used_at=m.last_used_at, last_used_address=m.last_used_address,
                   rotated_at=m.rotated_at, previous_secret_expires_at=m.previous_expires_at)

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
    scopes: list[str] = strawberry.field(description="Every scope the caller holds now.")
    expires_at: datetime | None = strawberry.field(
        description="When the credential stops working (access token or key expiry).")


@strawberry.type
class LoginPayload:
    token: str | None = strawberry.field(default=None, description="The access token.")
    expires_in: int | None = strawberry.field(default=None,
                                              description="Seconds the access token lives.")
    refresh_token: str | None = strawberry.field(
        default=None, description="Single use: `refresh` returns a new one with a new token.")
    refresh_expires_in: int | None = None
    user: User | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LogoutPayload:
    logged_out: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TeamPayload:
    team: Team | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UserPayload:
    user: User | None = None
    initial_password: str | None = strawberry.field(
        default=None, description="Shown once when generated; ask the user to change it.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeactivateUserPayload:
    user: User | None = None
    sessions_ended: int = 0
    deals_reassigned: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class InvitationPayload:
    user: User | None = None
    expires_at: datetime | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AcceptedPayload:
    accepted: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(
        default=None, description="The key itself, shown only on creation and rotation.")
    errors: list[UserError] = strawberry.field(default_factory=list)
