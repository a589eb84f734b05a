"""Login, me/tenant end to end, and every way credentials can be bad."""

from __future__ import annotations

from typing import Any

import asyncpg
import jwt
import pytest

from tenants.credentials import issue_jwt
from tenants.principal import Role, Scope
from tests.factories import Caller, TenantFactory

ME = "query { me { tenantId scopes user { email role } } tenant { slug name } }"
LOGIN = """
mutation($t: String!, $e: String!, $p: String!) {
  login(input: {tenant: $t, email: $e, password: $p}) {
    token expiresIn user { email role } errors { code message field }
  }
}"""
CREATE_TEAM = "mutation($n: String!) { createTeam(input: {name: $n}) { team { id name } errors { code message } } }"


async def test_login_returns_a_jwt_that_answers_me_and_tenant(tenants: TenantFactory) -> None:
    t = await tenants.create("Acme Corp")
    anonymous = Caller(tenants.client, {})

    data = await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email.upper(), p=t.admin_password)

    login = data["login"]
    assert login["errors"] == []
    assert login["user"] == {"email": t.admin_email, "role": "ADMIN"}
    assert login["expiresIn"] == tenants.settings.jwt_ttl_seconds
    me = await Caller(tenants.client, {"Authorization": f"Bearer {login['token']}"}).ok(ME)
    assert me["me"]["tenantId"] == str(t.id)
    assert me["me"]["user"] == {"email": t.admin_email, "role": "ADMIN"}
    assert me["tenant"] == {"slug": t.slug, "name": "Acme Corp"}


@pytest.mark.parametrize("which", ["password", "email", "tenant"])
async def test_login_failures_say_the_same_thing(tenants: TenantFactory, which: str) -> None:
    t = await tenants.create()
    args = {"t": t.slug, "e": t.admin_email, "p": t.admin_password}
    args[{"password": "p", "email": "e", "tenant": "t"}[which]] = "wrong-" + which

    data = await Caller(tenants.client, {}).ok(LOGIN, **args)

    assert data["login"]["token"] is None
    assert data["login"]["errors"] == [
        {"code": "UNAUTHENTICATED", "message": "wrong tenant, email or password", "field": None}
    ]


async def test_no_credentials_is_a_typed_error_not_a_500(tenants: TenantFactory) -> None:
    body = await Caller(tenants.client, {}).gql(ME)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "authentication required" in body["errors"][0]["message"]


async def test_expired_jwt_is_refused(tenants: TenantFactory) -> None:
    t = await tenants.create()
    token = issue_jwt(tenants.settings, t.admin, ttl=-30)

    body = await Caller(tenants.client, {"Authorization": f"Bearer {token}"}).gql(ME)

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the access token has expired; refresh it or log in again"


async def test_jwt_with_wrong_signature_is_refused_and_writes_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection
) -> None:
    t = await tenants.create()
    forged = jwt.encode(
        {"sub": str(t.admin.user_id), "tid": str(t.id), "role": "admin", "exp": 2_000_000_000,
         "iss": "saas", "aud": "saas-api"},
        "not-the-real-key-" + "y" * 32,
        algorithm="HS256",
    )
    caller = Caller(tenants.client, {"Authorization": f"Bearer {forged}"})

    body = await caller.gql(CREATE_TEAM, n="Forged team")

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the access token's signature is invalid"
    assert await owner_conn.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1", t.id) == 0


async def test_malformed_authorization_header(tenants: TenantFactory) -> None:
    body = await Caller(tenants.client, {"Authorization": "Basic abc"}).gql(ME)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_api_key_read_scope_can_query_but_not_mutate(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, app: Any
) -> None:
    t = await tenants.create()
    key = await t.api_key(Scope.READ)
    caller = t.key_caller(key)

    me = await caller.ok(ME)
    body = await caller.gql(CREATE_TEAM, n="Not allowed")

    assert me["me"]["user"] is None
    assert me["me"]["scopes"] == ["analytics:read", "campaigns:read", "contacts:read",
                                  "deals:read"]
    assert body["data"]["createTeam"]["errors"] == [
        {"code": "FORBIDDEN", "message": "this API key lacks the scope 'users:admin'"}
    ]
    assert await owner_conn.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1", t.id) == 0
    await app.state.services.auth.drain()  # use is recorded in the background
    last_used = await owner_conn.fetchrow(
        "SELECT last_used_at, last_used_address FROM api_keys WHERE tenant_id = $1", t.id)
    assert last_used["last_used_at"] is not None
    assert last_used["last_used_address"] == "127.0.0.1"


async def test_api_key_via_x_api_key_header_read_write_mutates_data_but_not_the_tenant(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    key = await t.api_key(Scope.READ_WRITE)
    caller = Caller(tenants.client, {"X-API-Key": key})

    contact = await caller.ok('mutation { createContact(input: {name: "Ann"}) { contact { name } errors { code } } }')
    team = await caller.ok(CREATE_TEAM, n="Partners")

    assert contact["createContact"] == {"contact": {"name": "Ann"}, "errors": []}
    assert team["createTeam"]["errors"][0]["code"] == "FORBIDDEN"
    assert await owner_conn.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1", t.id) == 0


async def test_revoked_key_is_refused(tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    key = await t.api_key(Scope.READ_WRITE, "users:admin")
    keys = await t.admin_caller.ok("query { apiKeys { id name scopes revokedAt } }")
    key_id = keys["apiKeys"][0]["id"]
    revoked = await t.admin_caller.ok(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } errors { code } } }",
        id=key_id,
    )
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None

    body = await t.key_caller(key).gql(CREATE_TEAM, n="After revoke")

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the API key has been revoked"
    assert await owner_conn.fetchval("SELECT count(*) FROM teams WHERE tenant_id = $1", t.id) == 0


async def test_forged_api_key_naming_another_tenant_is_refused(tenants: TenantFactory) -> None:
    a = await tenants.create()
    b = await tenants.create()
    key_a = await a.api_key(Scope.READ_WRITE)
    # Same key id and secret, but claiming tenant B: the lookup runs under B's RLS.
    forged = key_a.replace(a.id.hex, b.id.hex)

    body = await b.key_caller(forged).gql(ME)

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the API key is not valid"


async def test_rep_cannot_create_teams_or_keys(tenants: TenantFactory) -> None:
    t = await tenants.create()
    rep = await t.add_user(Role.REP)

    data = await t.as_user(rep).ok(CREATE_TEAM, n="Mine")

    assert data["createTeam"]["team"] is None
    assert data["createTeam"]["errors"][0]["code"] == "FORBIDDEN"


async def test_a_hash_with_old_parameters_still_logs_in_and_is_rehashed(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    """Hashes made before the argon2 parameters changed (argon2-cffi's defaults: 64 MiB,
    3 passes, 4 lanes) verify, and the first successful login stores a current one."""
    from argon2 import PasswordHasher

    from tenants import passwords

    t = await tenants.create()
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(t.admin_password)
    await owner_conn.execute("UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND email = $3",
                             old, t.id, t.admin_email)
    anonymous = Caller(tenants.client, {})

    wrong = await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email, p="not-the-password")
    assert wrong["login"]["token"] is None
    assert await owner_conn.fetchval(
        "SELECT password_hash FROM users WHERE tenant_id = $1 AND email = $2",
        t.id, t.admin_email) == old  # a failed login rewrites nothing

    data = await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email, p=t.admin_password)
    assert data["login"]["errors"] == [] and data["login"]["token"]
    stored = await owner_conn.fetchval(
        "SELECT password_hash FROM users WHERE tenant_id = $1 AND email = $2", t.id, t.admin_email)
    assert stored != old and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not passwords.needs_rehash(stored)
    again = await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email, p=t.admin_password)
    assert again["login"]["errors"] == []
