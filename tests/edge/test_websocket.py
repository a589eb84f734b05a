"""The websocket edge: a refused subscribe gets an `error` that says why (never a bare
`complete`), and a socket sending too many messages is closed with its reason."""

from __future__ import annotations

import asyncio
import json

from websockets.exceptions import ConnectionClosed

from tests.factories import TenantFactory
from tests.live.support import ApiServer, WsClient


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
