"""The websocket edge: a refused subscribe gets an `error` that says why (never a bare
`complete`), a socket sending too many messages is closed with its reason, a handshake from
an origin not allowed gets a 403 that says so, and refused credentials close the socket
with what was wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from saas.settings import Settings
from tenants.credentials import issue_jwt
from tests.factories import TenantFactory
from tests.live.support import ApiServer, WsClient

ALLOWED = "https://app.example.com"


async def test_refused_subscribes_get_an_error_with_its_code(
    tenants: TenantFactory, edge_server: ApiServer,
) -> None:
    t = await tenants.create()
    token = t.admin_caller.headers["Authorization"].removeprefix("Bearer ")
    ws = await WsClient.open(edge_server.ws, token)
    try:
        cases = {
            "{ me { " + "tenantId " * 4001 + "} }": "GRAPHQL_PARSE_FAILED",
            "{ nope }": "GRAPHQL_VALIDATION_FAILED",
            "query A { me { tenantId } } query B { me { tenantId } }": "OPERATION_RESOLUTION_FAILURE",
            "{ " + " ".join(f"a{i}: deals(first: 200) {{ edges {{ node {{ id history {{ seq }} }} }} }}"
                            for i in range(30)) + " }": "LIMIT_EXCEEDED",
        }
        for query, code in cases.items():
            sid = await ws.subscribe(query)
            message = await ws.next(sid)
            assert message["type"] == "error", message
            assert message["payload"][0]["extensions"]["code"] == code, message
        sid = await ws.subscribe("query($n: Int!) { deals(first: $n) { totalCount } }", n="ten")
        message = await ws.next(sid)
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "n"}
        fine = await ws.subscribe("{ me { tenantId } }")
        assert (await ws.next(fine))["payload"]["data"] == {"me": {"tenantId": str(t.id)}}
    finally:
        await ws.conn.close()


async def test_a_socket_sending_too_many_messages_is_closed_with_its_reason(
    tenants: TenantFactory, edge_server: ApiServer,
) -> None:
    t = await tenants.create()
    token = t.admin_caller.headers["Authorization"].removeprefix("Bearer ")
    ws = await WsClient.open(edge_server.ws, token)
    try:
        for _ in range(200):  # WS_MESSAGE_BURST is 40 on the edge server
            await ws.conn.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(ws.conn.wait_closed(), 10)
    except ConnectionClosed:
        pass
    assert ws.conn.close_code == 4429
    assert ws.conn.close_reason == "too many messages: at most 20 per second"


async def _refused_handshake(url: str, origin: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.open(url, None, init=False, origin=origin)
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


ORIGIN_REFUSED = {"errors": [{"message": "origin not allowed: pages of another origin connect "
                                         "only when it is listed in ALLOWED_ORIGINS",
                              "extensions": {"code": "FORBIDDEN"}}]}


async def test_without_allowed_origins_other_origins_are_refused_with_the_reason(
    tenants: TenantFactory, edge_server: ApiServer,
) -> None:
    """ALLOWED_ORIGINS is empty on the edge server: no other origin (docs/edge.md, "empty:
    none"); the same origin and clients without an Origin (not browsers) connect."""
    t = await tenants.create()
    token = t.admin_caller.headers["Authorization"].removeprefix("Bearer ")
    assert await _refused_handshake(edge_server.ws, "https://elsewhere.example") == (
        403, ORIGIN_REFUSED)
    for origin in (f"http://127.0.0.1:{edge_server.port}", None):
        ws = await WsClient.open(edge_server.ws, token, origin=origin)
        sid = await ws.subscribe("{ me { tenantId } }")
        assert (await ws.next(sid))["payload"]["data"] == {"me": {"tenantId": str(t.id)}}
        await ws.close()


@pytest.fixture(scope="module")
def origin_server(edge_server: ApiServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer({**edge_server.env, "ALLOWED_ORIGINS": ALLOWED},
                       tmp_path_factory.mktemp("origin-server") / "api.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_a_listed_origin_connects_and_others_are_refused_with_the_reason(
    tenants: TenantFactory, origin_server: ApiServer,
) -> None:
    t = await tenants.create()
    token = t.admin_caller.headers["Authorization"].removeprefix("Bearer ")
    ws = await WsClient.open(origin_server.ws, token, origin=ALLOWED)
    sid = await ws.subscribe("{ me { tenantId } }")
    assert (await ws.next(sid))["payload"]["data"] == {"me": {"tenantId": str(t.id)}}
    await ws.close()
    assert await _refused_handshake(origin_server.ws, "https://evil.example") == (
        403, ORIGIN_REFUSED)


async def test_refused_credentials_close_with_what_was_wrong(
    tenants: TenantFactory, edge_server: ApiServer, settings: Settings,
) -> None:
    t = await tenants.create()
    expired = issue_jwt(settings, t.admin, ttl=-60)
    key = await t.api_key("read")
    forged = key[:-1] + ("a" if key[-1] != "a" else "b")  # its id, not its secret
    cases = {
        "Bearer not-a-token": "the access token is malformed",
        f"Bearer {expired}": "the access token has expired; refresh it or log in again",
        f"Bearer {forged}": "the API key is not valid",
        None: "authentication required: send 'Authorization: Bearer <token or API key>' in "
              "the connection_init payload",
    }
    for authorization, reason in cases.items():
        ws = await WsClient.open(edge_server.ws, None, init=False)
        payload = {} if authorization is None else {"Authorization": authorization}
        await ws.conn.send(json.dumps({"type": "connection_init", "payload": payload}))
        await asyncio.wait_for(ws.conn.wait_closed(), 10)
        assert (ws.conn.close_code, ws.conn.close_reason) == (4403, reason), authorization
        await ws.close()
