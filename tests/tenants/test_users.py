"""The user lifecycle and API keys as admins and partner keys would use them: every failure
is typed and writes nothing (row-hash snapshot), every success is audited in its
transaction, and nobody grants more than they hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from strawberry.relay import GlobalID

from tenants.principal import Role
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import Caller, TenantFactory, snapshot

UPDATE = """mutation($input: UpdateUserInput!) { updateUser(input: $input) {
  user { name role teamId isActive } errors { code field message } } }"""
DEACTIVATE = """mutation($input: DeactivateUserInput!) { deactivateUser(input: $input) {
  user { isActive } sessionsEnded dealsReassigned errors { code field message } } }"""
REACTIVATE = """mutation($u: ID!) { reactivateUser(input: {userId: $u}) {
  user { isActive } errors { code field message } } }"""
CREATE_USER = """mutation($input: CreateUserInput!) { createUser(input: $input) {
  user { id role } initialPassword errors { code field message } } }"""
CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  apiKey { id scopes expiresAt createdByUserId createdByApiKeyId } secret
  errors { code field message } } }"""
ROTATE = """mutation($id: ID!, $g: Int!) { rotateApiKey(input: {id: $id, gracePeriodSeconds: $g}) {
  apiKey { rotatedAt previousSecretExpiresAt } secret errors { code field message } } }"""
ME = "query { me { scopes } }"


def gid(kind: str, id: uuid.UUID | None) -> str:
    return str(GlobalID(kind, str(id)))


async def audit_actions(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[str]:
    return [r["action"] for r in await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY occurred_at, id",
        tenant_id)]


async def test_update_user_changes_name_role_and_team_and_audits_the_role_change(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    team = await t.add_team("North")
    rep = await t.add_user(Role.REP)
    before = await audit_actions(owner_conn, t.id)

    data = await t.admin_caller.ok(UPDATE, input={"userId": gid("User", rep.user_id),
                                                  "name": "Rita", "role": "MANAGER",
                                                  "teamId": gid("Team", team)})
    cleared = await t.admin_caller.ok(UPDATE, input={"userId": gid("User", rep.user_id),
                                                     "teamId": None})

    assert data["updateUser"] == {"user": {"name": "Rita", "role": "MANAGER",
                                           "teamId": gid("Team", team), "isActive": True},
                                  "errors": []}
    assert cleared["updateUser"]["user"]["teamId"] is None
    assert (await audit_actions(owner_conn, t.id))[len(before):] == [
        "user.updated", "user.role_changed", "user.updated"]
    manager = await t.as_user(rep).ok(ME)  # the same old token: the new role applies
    assert "targets:write" in manager["me"]["scopes"]


@pytest.mark.parametrize("case", ["unknown user", "another tenant's user", "unknown team",
                                  "empty name", "last admin demoted", "a rep's token"])
async def test_update_user_failures_are_typed_and_write_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, case: str,
) -> None:
    t = await tenants.create()
    other = await tenants.create()
    rep = await t.add_user(Role.REP)
    caller = t.admin_caller
    target = gid("User", rep.user_id)
    patch: dict[str, Any] = {"name": "x"}
    expected = ("NOT_FOUND", "input.userId")
    if case == "unknown user":
        target = gid("User", uuid.uuid4())
    elif case == "another tenant's user":
        target = gid("User", other.admin.user_id)
    elif case == "unknown team":
        patch, expected = {"teamId": gid("Team", uuid.uuid4())}, ("NOT_FOUND", "input.teamId")
    elif case == "empty name":
        patch, expected = {"name": "  "}, ("VALIDATION_FAILED", "input.name")
    elif case == "last admin demoted":
        target, patch = gid("User", t.admin.user_id), {"role": "REP"}
        expected = ("CONFLICT", "input.role")
    else:
        caller, expected = t.as_user(rep), ("FORBIDDEN", None)
    before = await snapshot(owner_conn, t.id)

    data = await caller.ok(UPDATE, input={"userId": target, **patch})

    errors = data["updateUser"]["errors"]
    assert data["updateUser"]["user"] is None
    assert (errors[0]["code"], errors[0]["field"]) == expected, errors
    assert await snapshot(owner_conn, t.id) == before


async def test_deactivation_ends_sessions_refuses_login_and_hands_over_open_deals(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    leaving = await t.add_user(Role.REP)
    heir = await t.add_user(Role.REP)
    deals = [await create_deal(t.as_user(leaving), pipeline["id"], f"Deal {i}")
             for i in range(3)]
    async with tenants.db.unit_of_work(t.id) as uow:
        from tenants.models import User

        leaving_user = await uow.session.get(User, (t.id, leaving.user_id))
        assert leaving_user is not None
        email = leaving_user.email
    anonymous = Caller(tenants.client, {})
    login = """mutation($t: String!, $e: String!) { login(input: {tenant: $t, email: $e,
      password: "password-123"}) { token errors { code message } } }"""
    session = (await anonymous.ok(login, t=t.slug, e=email))["login"]["token"]

    done = await t.admin_caller.ok(DEACTIVATE, input={
        "userId": gid("User", leaving.user_id), "reassignDealsTo": gid("User", heir.user_id)})

    assert done["deactivateUser"] == {"user": {"isActive": False}, "sessionsEnded": 1,
                                      "dealsReassigned": 3, "errors": []}
    owners = await owner_conn.fetch("SELECT owner_id, version FROM deals WHERE tenant_id = $1",
                                    t.id)
    assert {(r["owner_id"], r["version"]) for r in owners} == {(heir.user_id, 2)}
    events = await owner_conn.fetch(
        "SELECT kind, data FROM stage_events WHERE tenant_id = $1 AND kind = 'updated'", t.id)
    assert len(events) == len(deals)
    refused = await Caller(tenants.client, {"Authorization": f"Bearer {session}"}).gql(ME)
    assert refused["errors"][0]["message"] == "the user has been deactivated"
    again = (await anonymous.ok(login, t=t.slug, e=email))["login"]
    assert again["errors"] == [{"code": "UNAUTHENTICATED",
                                "message": "wrong tenant, email or password"}]
    back = await t.admin_caller.ok(REACTIVATE, u=gid("User", leaving.user_id))
    assert back["reactivateUser"] == {"user": {"isActive": True}, "errors": []}
    assert (await anonymous.ok(login, t=t.slug, e=email))["login"]["token"]
    assert [a for a in await audit_actions(owner_conn, t.id)
            if a in ("user.deactivated", "user.reactivated")] == ["user.deactivated",
                                                                  "user.reactivated"]


@pytest.mark.parametrize("case", ["self", "unknown heir", "heir is the user", "twice"])
async def test_deactivation_failures_write_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, case: str,
) -> None:
    t = await tenants.create()
    rep = await t.add_user(Role.REP)
    pipeline = await default_pipeline(t.admin_caller)
    await create_deal(t.as_user(rep), pipeline["id"], "kept")
    payload: dict[str, Any] = {"userId": gid("User", rep.user_id)}
    expected: tuple[str, str] = ("CONFLICT", "input.userId")
    if case == "self":
        payload = {"userId": gid("User", t.admin.user_id)}
    elif case == "unknown heir":
        payload["reassignDealsTo"] = gid("User", uuid.uuid4())
        expected = ("NOT_FOUND", "input.reassignDealsTo")
    elif case == "heir is the user":
        payload["reassignDealsTo"] = gid("User", rep.user_id)
        expected = ("VALIDATION_FAILED", "input.reassignDealsTo")
    else:
        await t.admin_caller.ok(DEACTIVATE, input=payload)
    before = await snapshot(owner_conn, t.id)

    data = await t.admin_caller.ok(DEACTIVATE, input=payload)

    errors = data["deactivateUser"]["errors"]
    assert (errors[0]["code"], errors[0]["field"]) == expected, errors
    assert await snapshot(owner_conn, t.id) == before


async def test_nobody_grants_a_role_or_scopes_they_do_not_hold(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, app: Any,
) -> None:
    t = await tenants.create()
    user_admin_key = t.key_caller(await t.api_key("users:admin", "read"))
    deals_key = t.key_caller(await t.api_key("deals:write", "read"))
    rep = await t.add_user(Role.REP)
    for key in (user_admin_key, deals_key):  # first use is recorded (once a minute)
        await key.ok(ME)
    await app.state.services.auth.drain()
    before = await snapshot(owner_conn, t.id)

    admin_user = await user_admin_key.ok(CREATE_USER, input={
        "email": "boss@example.com", "name": "Boss", "role": "ADMIN",
        "password": "a long enough password"})
    by_deals_key_user = await deals_key.ok(CREATE_USER, input={
        "email": "x@example.com", "name": "X", "role": "REP"})
    by_deals_key_key = await deals_key.ok(CREATE_KEY, input={"name": "k", "scopes": ["read"]})
    wider_key = await user_admin_key.ok(CREATE_KEY, input={"name": "k",
                                                           "scopes": ["deals:write"]})
    alias_key = await user_admin_key.ok(CREATE_KEY, input={"name": "k", "scopes": ["admin"]})
    promote = await user_admin_key.ok(UPDATE, input={"userId": gid("User", rep.user_id),
                                                     "role": "ADMIN"})

    assert admin_user["createUser"]["errors"][0]["code"] == "FORBIDDEN"
    assert admin_user["createUser"]["errors"][0]["field"] == "input.role"
    for data, name in ((by_deals_key_user, "createUser"), (by_deals_key_key, "createApiKey")):
        assert data[name]["errors"][0] == {"code": "FORBIDDEN", "field": None,
                                           "message": "this API key lacks the scope "
                                                      "'users:admin'"}
    for data in (wider_key, alias_key):
        error = data["createApiKey"]["errors"][0]
        assert (error["code"], error["field"]) == ("FORBIDDEN", "input.scopes")
        assert "deals:write" in error["message"]
    assert promote["updateUser"]["errors"][0]["code"] == "FORBIDDEN"
    assert await snapshot(owner_conn, t.id) == before
    narrower = await user_admin_key.ok(CREATE_KEY, input={"name": "k", "scopes": ["deals:read"]})
    assert narrower["createApiKey"]["apiKey"]["scopes"] == ["deals:read"]
    assert narrower["createApiKey"]["apiKey"]["createdByApiKeyId"] is not None


async def test_key_scopes_expiry_and_a_key_that_expires_cannot_mint_one_that_does_not(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    soon = datetime.now(UTC) + timedelta(hours=1)
    expiring = t.key_caller(await t.api_key("users:admin", "read", expires_at=soon))

    forever = await expiring.ok(CREATE_KEY, input={"name": "k", "scopes": ["read"]})
    later = await expiring.ok(CREATE_KEY, input={
        "name": "k", "scopes": ["read"], "expiresAt": (soon + timedelta(days=1)).isoformat()})
    within = await expiring.ok(CREATE_KEY, input={
        "name": "k", "scopes": ["read"], "expiresAt": (soon - timedelta(minutes=5)).isoformat()})
    bad = await t.admin_caller.ok(CREATE_KEY, input={"name": "k",
                                                     "scopes": ["read", "deals:delete"]})
    past = await t.admin_caller.ok(CREATE_KEY, input={
        "name": "k", "scopes": ["read"], "expiresAt": "2020-01-01T00:00:00+00:00"})

    for data in (forever, later):
        assert data["createApiKey"]["errors"][0]["field"] == "input.expiresAt"
    assert within["createApiKey"]["errors"] == []
    assert bad["createApiKey"]["errors"][0]["field"] == "input.scopes.1"
    assert "unknown scope 'deals:delete'" in bad["createApiKey"]["errors"][0]["message"]
    assert past["createApiKey"]["errors"][0]["message"] == "expiresAt must be in the future"
    expired = await t.api_key("read", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    import asyncio

    await asyncio.sleep(1.5)
    body = await t.key_caller(expired).gql(ME)
    assert body["errors"][0]["message"] == "the API key has expired"


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    old = await t.api_key("read")
    key_id = (await t.admin_caller.ok("query { apiKeys { id } }"))["apiKeys"][0]["id"]

    rotated = await t.admin_caller.ok(ROTATE, id=key_id, g=3600)
    new = rotated["rotateApiKey"]["secret"]
    both = [await t.key_caller(s).gql(ME) for s in (old, new)]
    again = await t.admin_caller.ok(ROTATE, id=key_id, g=0)  # ends the old one's grace now
    newest = again["rotateApiKey"]["secret"]
    after = [await t.key_caller(s).gql(ME) for s in (old, new, newest)]
    too_long = await t.admin_caller.ok(ROTATE, id=key_id, g=10 ** 9)

    assert rotated["rotateApiKey"]["errors"] == [] and new != old
    assert all("errors" not in b for b in both)
    # The second rotation (no grace) replaced the first one's grace: only the newest works.
    assert [b.get("errors", [{}])[0].get("message") for b in after] == [
        "the API key is not valid", "the API key is not valid", None]
    assert too_long["rotateApiKey"]["errors"][0]["field"] == "input.gracePeriodSeconds"
    assert (await audit_actions(owner_conn, t.id)).count("api_key.rotated") == 2
