"""Revocation across two real API processes: revoke a key, deactivate a user, lower a role,
end a session. The next HTTP request is refused (or restricted), and every open websocket of
that principal on both processes is closed within 1 s with the documented reason. Expiring
access tokens close their socket unless refreshed with a `refresh` message."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from strawberry.relay import GlobalID

from saas.settings import Settings
from tenants.credentials import issue_jwt
from tenants.principal import Principal, Role
from tests.deals.ops import default_pipeline
from tests.factories import Caller, TenantFactory, TenantHandle
from tests.live.support import BOARD_EVENTS, ApiServer, WsClient

BOUND = 1.0  # seconds from the change's commit to the close, on every process
ME = "query { me { tenantId scopes user { role } } }"
SET_TARGET = """mutation($u: ID!) { setTarget(input: {period: {kind: WEEK, start: "2026-01-05"},
  metric: WON_COUNT, value: "3", userId: $u}) { target { id } errors { code message } } }"""


class Watched:
    """A websocket with a board subscription, and when and how it was closed."""

    def __init__(self, client: WsClient) -> None:
        self.client = client
        self.closed_at: float | None = None
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        await self.client.conn.wait_closed()
        self.closed_at = time.monotonic()

    @classmethod
    async def open(cls, server: ApiServer, credential: str, pipeline_id: str) -> Watched:
        client = await WsClient.open(server.ws, credential)
        sid = await client.subscribe(BOARD_EVENTS, p=pipeline_id)
        assert await client.quiet(sid, 0.2) == []  # subscribed, nothing failed
        return cls(client)

    async def closed(self, within: float = 10) -> tuple[int | None, str | None, float]:
        await asyncio.wait_for(asyncio.shield(self._task), within)
        assert self.closed_at is not None
        return self.client.conn.close_code, self.client.conn.close_reason, self.closed_at

    async def stop(self) -> None:
        await self.client.close()


async def open_everywhere(servers: tuple[ApiServer, ApiServer], credential: str,
                          pipeline_id: str, per_server: int = 2) -> list[Watched]:
    return [await Watched.open(server, credential, pipeline_id)
            for server in servers for _ in range(per_server)]


async def assert_closed(sockets: list[Watched], committed_at: float, code: int,
                        reason: str) -> list[float]:
    delays = []
    for socket in sockets:
        got_code, got_reason, at = await socket.closed()
        assert (got_code, got_reason) == (code, reason)
        delays.append(at - committed_at)
    assert max(delays) <= BOUND, delays
    return delays



async def test_revoking_a_key_refuses_its_next_request_and_closes_its_sockets_everywhere(
    live_tenants: TenantFactory, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    key = await t.api_key("read")
    key_id = (await t.admin_caller.ok("query { apiKeys { id } }"))["apiKeys"][0]["id"]
    sockets = await open_everywhere(servers, key, pipeline["id"])
    try:
        revoked = await t.admin_caller.ok(
            "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } } }",
            id=key_id)
        committed = time.monotonic()
        assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
        delays = await assert_closed(sockets, committed, 4403, "the API key has been revoked")
    finally:
        for s in sockets:
            await s.stop()
    async with httpx.AsyncClient(base_url=servers[1].http, timeout=20) as b:
        body = (await b.post("/graphql", json={"query": ME},
                             headers={"Authorization": f"Bearer {key}"})).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the API key has been revoked"
    print(f"key revocation: sockets closed after {[round(d * 1000) for d in delays]} ms")


async def test_deactivating_a_user_refuses_their_token_and_closes_their_sockets(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    rep = await t.add_user(Role.REP)
    token = issue_jwt(settings, rep)
    # Warm both processes' caches with the active user first.
    for server in servers:
        async with httpx.AsyncClient(base_url=server.http, timeout=20) as c:
            assert "errors" not in (await c.post("/graphql", json={"query": ME}, headers={
                "Authorization": f"Bearer {token}"})).json()
    sockets = await open_everywhere(servers, token, pipeline["id"])
    try:
        done = await t.admin_caller.ok(
            "mutation($u: ID!) { deactivateUser(input: {userId: $u}) { user { isActive } "
            "errors { code message } } }", u=str(GlobalID("User", str(rep.user_id))))
        committed = time.monotonic()
        assert done["deactivateUser"] == {"user": {"isActive": False}, "errors": []}
        await assert_closed(sockets, committed, 4403, "the user has been deactivated")
    finally:
        for s in sockets:
            await s.stop()
    async with httpx.AsyncClient(base_url=servers[1].http, timeout=20) as b:
        body = (await b.post("/graphql", json={"query": ME},
                             headers={"Authorization": f"Bearer {token}"})).json()
    assert body["errors"][0]["message"] == "the user has been deactivated"


async def test_lowering_a_role_restricts_the_next_request_and_closes_the_sockets(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    manager = await t.add_user(Role.MANAGER, team_id=await t.add_team("Sales"))
    token = issue_jwt(settings, manager)
    user_gid = str(GlobalID("User", str(manager.user_id)))
    async with httpx.AsyncClient(base_url=servers[1].http, timeout=20) as b:
        as_manager = Caller(b, {"Authorization": f"Bearer {token}"})
        before = await as_manager.ok(SET_TARGET, u=user_gid)
        assert before["setTarget"]["errors"] == []
        sockets = await open_everywhere(servers, token, pipeline["id"])
        try:
            changed = await t.admin_caller.ok(
                "mutation($u: ID!) { updateUser(input: {userId: $u, role: REP}) { user { role } "
                "errors { code } } }", u=user_gid)
            committed = time.monotonic()
            assert changed["updateUser"] == {"user": {"role": "REP"}, "errors": []}
            await assert_closed(sockets, committed, 4403, "your role has changed")
        finally:
            for s in sockets:
                await s.stop()
        after = await as_manager.ok(SET_TARGET, u=user_gid)  # same token, next request
        me = await as_manager.ok(ME)
    assert after["setTarget"]["errors"][0]["code"] == "FORBIDDEN"
    assert me["me"]["user"]["role"] == "REP"
    assert "targets:write" not in me["me"]["scopes"]


async def test_logout_ends_the_sessions_tokens_and_sockets(
    live_tenants: TenantFactory, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    login = await Caller(t.admin_caller.client, {}).ok(
        """mutation($t: String!, $e: String!, $p: String!) { login(input: {tenant: $t,
        email: $e, password: $p}) { token refreshToken errors { code } } }""",
        t=t.slug, e=t.admin_email, p=t.admin_password)
    token = login["login"]["token"]
    sockets = await open_everywhere(servers, token, pipeline["id"], per_server=1)
    async with httpx.AsyncClient(base_url=servers[1].http, timeout=20) as b:
        caller = Caller(b, {"Authorization": f"Bearer {token}"})
        try:
            out = await caller.ok("mutation { logout { loggedOut errors { code } } }")
            committed = time.monotonic()
            assert out["logout"] == {"loggedOut": True, "errors": []}
            await assert_closed(sockets, committed, 4403, "the session has been revoked")
        finally:
            for s in sockets:
                await s.stop()
        body = await caller.gql(ME)
    assert body["errors"][0]["message"] == ("the session has ended (logged out or revoked); "
                                            "log in again")


def _short_token(settings: Settings, principal: Principal, ttl: int) -> str:
    return issue_jwt(settings, principal, ttl=ttl)


async def test_an_expired_access_token_closes_its_socket_unless_refreshed(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    t: TenantHandle = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    rep = await t.add_user(Role.REP)
    expiring = await Watched.open(servers[0], _short_token(settings, rep, 2), pipeline["id"])
    refreshed = await Watched.open(servers[1], _short_token(settings, rep, 2), pipeline["id"])
    try:
        await refreshed.client.conn.send(json.dumps({"type": "refresh", "payload": {
            "Authorization": f"Bearer {_short_token(settings, rep, 5)}"}}))
        code, reason, at = await expiring.closed(within=6)
        assert (code, reason) == (4401, "the access token has expired")
        await asyncio.sleep(0.5)
        assert refreshed.closed_at is None  # still open after the first token's expiry
        code, reason, _ = await refreshed.closed(within=8)
        assert (code, reason) == (4401, "the access token has expired")
        assert refreshed.closed_at is not None and refreshed.closed_at - at >= 1.5
    finally:
        await expiring.stop()
        await refreshed.stop()


async def test_a_refresh_with_another_users_token_closes_the_socket(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    rep = await t.add_user(Role.REP)
    socket = await Watched.open(servers[0], issue_jwt(settings, rep), pipeline["id"])
    try:
        await socket.client.conn.send(json.dumps({"type": "refresh", "payload": {
            "Authorization": f"Bearer {issue_jwt(settings, t.admin)}"}}))
        code, reason, _ = await socket.closed(within=5)
    finally:
        await socket.stop()
    assert (code, reason) == (4403, "a refresh must carry an access token of the same user")


