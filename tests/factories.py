"""Small async factories: a provisioned tenant with its admin, and a GraphQL caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from saas.db import Database
from saas.settings import Settings
from tenants import keys, service, users
from tenants.credentials import issue_jwt
from tenants.principal import Principal, Role, Scope


@dataclass
class Caller:
    """Posts GraphQL as one set of credentials and returns the decoded JSON."""

    client: httpx.AsyncClient
    headers: dict[str, str]

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(self, query: str, **variables: Any) -> dict[str, Any]:
        """Like gql, but the response must have no errors; returns `data`."""
        body = await self.gql(query, **variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@dataclass
class TenantHandle:
    id: uuid.UUID
    slug: str
    admin: Principal
    admin_password: str
    admin_email: str
    factory: TenantFactory = field(repr=False)

    def as_user(self, principal: Principal) -> Caller:
        token = issue_jwt(self.factory.settings, principal)
        return Caller(self.factory.client, {"Authorization": f"Bearer {token}"})

    @property
    def admin_caller(self) -> Caller:
        return self.as_user(self.admin)

    async def add_user(self, role: Role, *, team_id: uuid.UUID | None = None,
                       name: str | None = None) -> Principal:
        async with self.factory.db.unit_of_work(self.id) as uow:
            user, _ = await users.create(
                uow=uow, principal=self.admin, email=f"{uuid.uuid4().hex[:8]}@{self.slug}.test",
                name=name or role.value, role=role, team_id=team_id, password="password-123",
            )
        return service.principal_for_user(user)

    async def add_team(self, name: str) -> uuid.UUID:
        async with self.factory.db.unit_of_work(self.id) as uow:
            team = await service.create_team(uow=uow, principal=self.admin, name=name)
        return team.id

    async def api_key(self, *scopes: Scope | str, expires_at: Any = None) -> str:
        """A key holding `scopes` (scope names or aliases, tenants/scopes.py)."""
        names = [str(s) for s in scopes] or ["read"]
        async with self.factory.db.unit_of_work(self.id) as uow:
            _, secret = await keys.create(uow=uow, principal=self.admin,
                                          name=f"key-{'-'.join(names)}"[:200],
                                          scope_names=names, expires_at=expires_at)
        return secret

    def key_caller(self, secret: str) -> Caller:
        return Caller(self.factory.client, {"Authorization": f"Bearer {secret}"})


@dataclass
class TenantFactory:
    db: Database
    settings: Settings
    client: httpx.AsyncClient

    async def create(self, name: str | None = None) -> TenantHandle:
        slug = f"t-{uuid.uuid4().hex[:12]}"
        email = f"admin@{slug}.test"
        result = await service.provision_tenant(
            db=self.db, name=name or slug, slug=slug, admin_email=email,
            admin_password="admin-password",
        )
        return TenantHandle(
            id=result.tenant.id,
            slug=slug,
            admin=service.principal_for_user(result.admin),
            admin_password="admin-password",
            admin_email=email,
            factory=self,
        )


TENANT_TABLES = ("teams", "users", "api_keys", "segments", "pipelines", "stages", "companies",
                 "contacts", "custom_field_defs", "deals", "stage_events", "activities",
                 "tenant_counters", "audit_events", "auth_sessions", "refresh_tokens",
                 "user_tokens", "entity_events", "webhook_endpoints", "webhook_deliveries",
                 "webhook_attempts")


async def snapshot(owner_conn: Any, tenant_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every tenant table, read as the owner (bypasses RLS)."""
    result = {}
    for table in TENANT_TABLES:
        row = await owner_conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
            f"AS h FROM {table} t WHERE tenant_id = $1", tenant_id)
        result[table] = (row["n"], row["h"])
    return result


async def all_tables_snapshot(owner_conn: Any, tenant_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    """Like `snapshot`, over every table with a tenant_id column (campaign, forecast, audit and
    whatever later migrations add), so a failed mutation is shown to write nothing anywhere."""
    tables = [r["table_name"] for r in await owner_conn.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'tenant_id' ORDER BY table_name")]
    result = {}
    for table in tables:
        row = await owner_conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
            f"AS h FROM {table} t WHERE tenant_id = $1", tenant_id)
        result[table] = (row["n"], row["h"])
    return result
