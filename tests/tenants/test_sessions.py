"""Sessions: short access tokens, refresh tokens that rotate, reuse detection, logout."""

from __future__ import annotations

import asyncpg

from tests.factories import Caller, TenantFactory, TenantHandle

LOGIN = """mutation($t: String!, $e: String!, $p: String!) {
  login(input: {tenant: $t, email: $e, password: $p}) {
    token expiresIn refreshToken refreshExpiresIn user { email } errors { code message } } }"""
REFRESH = """mutation($r: String!) { refresh(input: {refreshToken: $r}) {
  token expiresIn refreshToken errors { code message } } }"""
ME = "query { me { user { email } } }"


async def login(t: TenantHandle, password: str | None = None) -> dict[str, str]:
    data = await Caller(t.factory.client, {}).ok(LOGIN, t=t.slug, e=t.admin_email,
                                                  p=password or t.admin_password)
    assert data["login"]["errors"] == [], data
    return data["login"]  # type: ignore[no-any-return]


def bearer(t: TenantHandle, token: str) -> Caller:
    return Caller(t.factory.client, {"Authorization": f"Bearer {token}"})


async def test_login_gives_a_short_access_token_and_a_rotating_refresh_token(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    first = await login(t)
    anonymous = Caller(tenants.client, {})

    second = (await anonymous.ok(REFRESH, r=first["refreshToken"]))["refresh"]

    assert first["expiresIn"] == 900 and first["refreshExpiresIn"] == 30 * 86400
    assert second["errors"] == []
    assert second["refreshToken"] != first["refreshToken"]
    assert second["token"] != first["token"]
    for token in (first["token"], second["token"]):  # same session: both still valid
        assert (await bearer(t, token).ok(ME))["me"]["user"]["email"] == t.admin_email


async def test_a_reused_refresh_token_revokes_the_whole_session(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    first = await login(t)
    other = await login(t)  # another session of the same user is not affected
    anonymous = Caller(tenants.client, {})
    second = (await anonymous.ok(REFRESH, r=first["refreshToken"]))["refresh"]

    reuse = (await anonymous.ok(REFRESH, r=first["refreshToken"]))["refresh"]
    descendant = (await anonymous.ok(REFRESH, r=second["refreshToken"]))["refresh"]
    access = await bearer(t, second["token"]).gql(ME)

    assert reuse["token"] is None
    assert reuse["errors"] == [{"code": "UNAUTHENTICATED", "message":
                                "this refresh token was already used: the session has been "
                                "revoked; log in again"}]
    assert descendant["errors"][0]["message"] == ("the session has ended (logged out or "
                                                  "revoked); log in again")
    assert access["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await bearer(t, other["token"]).ok(ME))["me"]["user"]["email"] == t.admin_email
    rows = await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND action = "
        "'session.refresh_reused'", t.id)
    assert len(rows) == 1
    revoked = await owner_conn.fetch(
        "SELECT revoked_reason FROM auth_sessions WHERE tenant_id = $1 AND revoked_at IS NOT NULL",
        t.id)
    assert [r["revoked_reason"] for r in revoked] == ["refresh_reused"]


async def test_logout_ends_the_access_and_refresh_tokens(tenants: TenantFactory) -> None:
    t = await tenants.create()
    session = await login(t)
    caller = bearer(t, session["token"])

    out = await caller.ok("mutation { logout { loggedOut errors { code } } }")
    again = await caller.gql(ME)
    refreshed = (await Caller(tenants.client, {}).ok(REFRESH, r=session["refreshToken"]))

    assert out["logout"] == {"loggedOut": True, "errors": []}
    assert again["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert refreshed["refresh"]["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_bad_refresh_tokens_are_refused_and_change_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    session = await login(t)
    before = await owner_conn.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE tenant_id = $1", t.id)
    anonymous = Caller(tenants.client, {})
    forged = session["refreshToken"][:-4] + "AAAA"
    for bad in (forged, "rt_garbage", "not-a-token", session["token"]):
        result = (await anonymous.ok(REFRESH, r=bad))["refresh"]
        assert result["errors"][0] == {"code": "UNAUTHENTICATED",
                                       "message": "the refresh token is not valid"}, bad
    after = await owner_conn.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE tenant_id = $1 AND used_at IS NULL", t.id)
    assert (before, after) == (1, 1)


async def test_change_password_needs_the_current_one_and_ends_other_sessions(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    mine, other = await login(t), await login(t)
    change = """mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c,
      newPassword: $n}) { accepted errors { code field message } } }"""
    caller = bearer(t, mine["token"])

    wrong = await caller.ok(change, c="not-the-password", n="a brand new passphrase")
    short = await caller.ok(change, c=t.admin_password, n="short")
    done = await caller.ok(change, c=t.admin_password, n="a brand new passphrase")

    assert wrong["changePassword"]["errors"] == [{"code": "VALIDATION_FAILED",
                                                  "field": "input.currentPassword",
                                                  "message": "the current password is wrong"}]
    assert short["changePassword"]["errors"][0]["field"] == "input.newPassword"
    assert done["changePassword"] == {"accepted": True, "errors": []}
    assert "errors" not in await caller.gql(ME)  # this session goes on
    assert (await bearer(t, other["token"]).gql(ME))["errors"][0]["extensions"]["code"] == \
        "UNAUTHENTICATED"
    old = await Caller(tenants.client, {}).ok(LOGIN, t=t.slug, e=t.admin_email,
                                               p=t.admin_password)
    assert old["login"]["errors"][0]["code"] == "UNAUTHENTICATED"
    assert (await login(t, "a brand new passphrase"))["token"]
    actions = [r["action"] for r in await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND action LIKE 'user.password%'",
        t.id)]
    assert actions == ["user.password_changed"]  # the failed attempts wrote none
