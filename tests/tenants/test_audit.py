"""The audit trail: written with the action, never without it, append-only, admins only."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from saas.db import Database
from tenants import audit
from tenants.principal import Role
from tests.factories import Caller, TenantFactory

EVENTS = """query($first: Int!, $after: String, $filter: AuditFilterInput) {
  auditEvents(first: $first, after: $after, filter: $filter) {
    edges { cursor node { action targetType targetId address details
                          actor { userId apiKeyId } } }
    pageInfo { hasNextPage endCursor } } }"""
CREATE_TEAM = """mutation($n: String!) { createTeam(input: {name: $n}) {
  team { id } errors { code message } } }"""


async def actions(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[str]:
    rows = await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY occurred_at, id",
        tenant_id)
    return [r["action"] for r in rows]


async def test_an_action_and_its_entry_commit_together_and_a_failed_one_writes_none(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    before = await actions(owner_conn, t.id)

    ok = await t.admin_caller.ok(CREATE_TEAM, n="Sales")
    duplicate = await t.admin_caller.ok(CREATE_TEAM, n="Sales")  # fails: the name is taken
    empty = await t.admin_caller.ok(CREATE_TEAM, n="  ")  # fails validation

    assert ok["createTeam"]["errors"] == []
    assert duplicate["createTeam"]["errors"][0]["code"] == "CONFLICT"
    assert empty["createTeam"]["errors"][0]["code"] == "VALIDATION_FAILED"
    assert await actions(owner_conn, t.id) == [*before, "team.created"]
    row = await owner_conn.fetchrow(
        "SELECT actor_user_id, target_type, details FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'team.created'", t.id)
    assert row["actor_user_id"] == t.admin.user_id
    assert row["target_type"] == "Team"


async def test_the_app_role_cannot_change_or_delete_entries(
    tenants: TenantFactory, db: Database, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    await t.admin_caller.ok(CREATE_TEAM, n="Ops")
    for sql in ("UPDATE audit_events SET action = 'team.renamed'",
                "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with db.unit_of_work(t.id) as uow:
                await uow.session.execute(text(sql))
    # Even the owner cannot rewrite history: a trigger refuses it.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner_conn.execute("DELETE FROM audit_events WHERE tenant_id = $1", t.id)
    assert "team.created" in await actions(owner_conn, t.id)


async def test_secrets_are_refused_as_details(tenants: TenantFactory, db: Database) -> None:
    t = await tenants.create()
    for details in ({"password": "x"}, {"new_secret": "x"}, {"nested": {"token": "x"}},
                    {"secret_hash": "x"}):
        with pytest.raises(ValueError, match="never hold secrets"):
            async with db.unit_of_work(t.id) as uow:
                await audit.record(uow, t.admin, "user.updated", details=details)
    with pytest.raises(ValueError, match=r"domain\.verb"):
        async with db.unit_of_work(t.id) as uow:
            await audit.record(uow, t.admin, "Not An Action")


async def test_admins_page_and_filter_the_trail_others_are_forbidden(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    for i in range(5):
        await t.admin_caller.ok(CREATE_TEAM, n=f"Team {i}")
    rep = await t.add_user(Role.REP)
    manager = await t.add_user(Role.MANAGER)

    first = await t.admin_caller.ok(EVENTS, first=2, filter={"actions": ["team.created"]})
    conn = first["auditEvents"]
    rest = await t.admin_caller.ok(EVENTS, first=10, after=conn["pageInfo"]["endCursor"],
                                   filter={"actions": ["team.created"]})
    from strawberry.relay import GlobalID

    by_actor = await t.admin_caller.ok(
        EVENTS, first=50, filter={"actorUserId": str(GlobalID("User", str(t.admin.user_id)))})
    denied = [await t.as_user(p).gql(EVENTS, first=5) for p in (rep, manager)]

    names = [e["node"]["details"]["name"] for e in conn["edges"]]
    names += [e["node"]["details"]["name"] for e in rest["auditEvents"]["edges"]]
    assert conn["pageInfo"]["hasNextPage"] is True
    assert rest["auditEvents"]["pageInfo"]["hasNextPage"] is False
    assert names == [f"Team {i}" for i in (4, 3, 2, 1, 0)]  # newest first, no repeats
    assert {e["node"]["action"] for e in by_actor["auditEvents"]["edges"]} >= {
        "team.created", "user.created"}
    for body in denied:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_login_success_and_failure_are_recorded_without_the_password(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    login = """mutation($t: String!, $e: String!, $p: String!) {
      login(input: {tenant: $t, email: $e, password: $p}) { token errors { code } } }"""
    anonymous = Caller(tenants.client, {})
    await anonymous.ok(login, t=t.slug, e=t.admin_email, p="wrong-password-1")
    await anonymous.ok(login, t=t.slug, e=t.admin_email, p=t.admin_password)

    rows = await owner_conn.fetch(
        "SELECT action, details::text AS details FROM audit_events WHERE tenant_id = $1 "
        "AND action LIKE 'login.%' ORDER BY occurred_at", t.id)
    assert [r["action"] for r in rows] == ["login.failed", "login.succeeded"]
    assert all("wrong-password-1" not in r["details"] and t.admin_password not in r["details"]
               for r in rows)


async def test_key_actions_each_write_one_entry_and_failed_ones_none(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    from strawberry.relay import GlobalID

    t = await tenants.create()
    admin = t.admin_caller
    create = """mutation($s: [String!]!) { createApiKey(input: {name: "partner", scopes: $s}) {
      apiKey { id } errors { code } } }"""
    rotate = """mutation($id: ID!) { rotateApiKey(input: {id: $id}) { errors { code } } }"""
    revoke = """mutation($id: ID!) { revokeApiKey(input: {id: $id}) { errors { code } } }"""
    unknown = str(GlobalID("ApiKey", str(uuid.uuid4())))
    before = await actions(owner_conn, t.id)

    bad = await admin.ok(create, s=["nope"])
    made = await admin.ok(create, s=["read"])
    key_id = made["createApiKey"]["apiKey"]["id"]
    await admin.ok(rotate, id=key_id)
    missing = await admin.ok(rotate, id=unknown)
    await admin.ok(revoke, id=key_id)
    await admin.ok(revoke, id=key_id)  # already revoked: nothing new happens
    gone = await admin.ok(revoke, id=unknown)

    assert bad["createApiKey"]["errors"][0]["code"] == "VALIDATION_FAILED"
    assert missing["rotateApiKey"]["errors"][0]["code"] == "NOT_FOUND"
    assert gone["revokeApiKey"]["errors"][0]["code"] == "NOT_FOUND"
    assert (await actions(owner_conn, t.id))[len(before):] == [
        "api_key.created", "api_key.rotated", "api_key.revoked"]
    rows = await owner_conn.fetch(
        "SELECT details::text AS d FROM audit_events WHERE tenant_id = $1 AND target_id = $2",
        t.id, uuid.UUID(GlobalID.from_id(key_id).node_id))
    secrets_ = await owner_conn.fetchrow(
        "SELECT secret_hash, previous_secret_hash FROM api_keys WHERE tenant_id = $1", t.id)
    assert len(rows) == 3
    assert all(secrets_["secret_hash"] not in r["d"] and "sp_" not in r["d"] for r in rows)
