"""Live boards end to end: real API processes, real Redis and PostgreSQL, real websockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import pytest
import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from saas.db import Database
from saas.deals.models import StageEvent
from saas.live.hub import Hub
from saas.live.stream import Delivered, Resync, stream
from saas.settings import Settings
from tenants.credentials import issue_jwt
from tests.deals.ops import create_deal, default_pipeline, move
from tests.factories import Caller, TenantFactory, TenantHandle
from tests.live.conftest import WS_MAX_SUBSCRIPTIONS
from tests.live.support import (
    BOARD_EVENTS,
    DEAL_EVENTS,
    PROTOCOL,
    ApiServer,
    RedisProcess,
    WsClient,
)

STAGE_EVENTS = """query($after: String, $p: ID) { stageEvents(after: $after, first: 1000,
  pipelineId: $p) { events { seq kind } } }"""


class Board:
    """A tenant's default pipeline with deals, and moves that keep each deal's version."""

    def __init__(self, caller: Caller, pipeline: dict[str, Any]) -> None:
        self.caller = caller
        self.pipeline_id: str = pipeline["id"]
        self.open_stages = [s["id"] for s in sorted(pipeline["stages"],
                                                    key=lambda s: s["position"])
                            if s["kind"] == "OPEN"]
        self.deals: dict[str, int] = {}
        self._next = itertools.count(1)

    @classmethod
    async def create(cls, t: TenantHandle, deals: int = 2) -> Board:
        caller = t.admin_caller
        board = cls(caller, await default_pipeline(caller))
        for i in range(deals):
            deal = await create_deal(caller, board.pipeline_id, f"Deal {i}", amount="100")
            board.deals[deal["id"]] = deal["version"]
        return board

    async def move_some(self, n: int) -> None:
        ids = list(self.deals)
        for _ in range(n):
            k = next(self._next)
            deal = ids[k % len(ids)]
            to = self.open_stages[k % len(self.open_stages)]
            result = await move(self.caller, deal, to, self.deals[deal])
            assert result["errors"] == [], result
            self.deals[deal] = result["deal"]["version"]

    async def log(self, after: int = 0) -> list[int]:
        data = await self.caller.ok(STAGE_EVENTS, after=str(after), p=self.pipeline_id)
        return [e["seq"] for e in data["stageEvents"]["events"]]


def token(settings: Settings, t: TenantHandle) -> str:
    return issue_jwt(settings, t.admin)


async def test_moves_through_one_process_reach_subscribers_of_another_in_order(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    _, b = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=3)
    start = (await board.log())[-1]
    clients = [await WsClient.open(b.ws, token(settings, t)) for _ in range(2)]
    try:
        subs = [await clients[0].subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start)),
                await clients[1].subscribe(DEAL_EVENTS, after=str(start))]
        await board.move_some(12)
        expected = [s for s in await board.log() if s > start]
        assert len(expected) == 12
        got0 = await clients[0].events(subs[0], 12)
        got1 = await clients[1].events(subs[1], 12)
        assert [e["seq"] for e in got0] == expected
        assert [e["seq"] for e in got1] == expected
        assert {e["__typename"] for e in got0} == {"DealMoved"}
        last = got0[-1]
        assert last["deal"]["version"] >= 2 and last["deal"]["owner"]["name"]
        assert last["actor"]["userId"] and last["cursor"] == str(last["seq"])
        assert await clients[0].quiet(subs[0]) == []
        assert await clients[1].quiet(subs[1]) == []
    finally:
        for c in clients:
            await c.close()


async def test_tenant_isolation_and_forged_pipeline_ids(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    _, b = servers
    ta, tb = await live_tenants.create(), await live_tenants.create()
    board_a, board_b = await Board.create(ta), await Board.create(tb, deals=1)
    client = await WsClient.open(b.ws, token(settings, tb))
    try:
        forged = await client.subscribe(BOARD_EVENTS, p=board_a.pipeline_id, after="0")
        msg = await client.next(forged)
        assert msg["type"] == "next" and msg["payload"]["data"] is None
        assert msg["payload"]["errors"][0]["message"] == "pipeline not found"
        assert msg["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        garbage = await client.subscribe(BOARD_EVENTS, p="not-an-id", after="0")
        msg = await client.next(garbage)
        assert msg["payload"]["errors"][0]["message"] == "pipeline not found"

        start_b = (await board_b.log())[-1]
        wide = await client.subscribe(DEAL_EVENTS, after=str(start_b))
        forged_filter = await client.subscribe(DEAL_EVENTS, p=board_a.pipeline_id)
        msg = await client.next(forged_filter)
        assert msg["payload"]["errors"][0]["message"] == "pipeline not found"
        await board_a.move_some(5)
        await board_b.move_some(1)
        got = await client.events(wide, 1)
        assert [e["seq"] for e in got] == [start_b + 1]
        assert got[0]["dealId"] in board_b.deals
        assert await client.quiet(wide) == []
    finally:
        await client.close()


async def test_reconnect_with_last_cursor_gets_exactly_the_missed_events(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, b = servers
    t = await live_tenants.create()
    board = await Board.create(t)
    start = (await board.log())[-1]
    client = await WsClient.open(b.ws, token(settings, t))
    sid = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start))
    await board.move_some(2)
    first = await client.events(sid, 2)
    await client.close()

    await board.move_some(3)  # missed while disconnected
    client = await WsClient.open(a.ws, token(settings, t))
    try:
        sid = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id,
                                     after=first[-1]["cursor"])
        missed = await client.events(sid, 3)
        await board.move_some(2)
        live = await client.events(sid, 2)
        seqs = [e["seq"] for e in first + missed + live]
        assert seqs == [s for s in await board.log() if s > start]
        assert len(set(seqs)) == len(seqs)
        assert await client.quiet(sid) == []
    finally:
        await client.close()


async def test_no_cursor_starts_live(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    t = await live_tenants.create()
    board = await Board.create(t)
    client = await WsClient.open(servers[1].ws, token(settings, t))
    try:
        sid = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id)
        await asyncio.sleep(0.3)  # let the subscription register before the move
        await board.move_some(1)
        got = await client.events(sid, 1)
        assert [e["seq"] for e in got] == (await board.log())[-1:]
    finally:
        await client.close()


async def test_protocol_timeouts_auth_and_caps(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, _ = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=1)

    async def closed_with(conn: Any) -> int:
        with pytest.raises(websockets.ConnectionClosed) as info:
            async with asyncio.timeout(5):
                while True:
                    await conn.recv()
        assert info.value.rcvd is not None
        return int(info.value.rcvd.code)

    # No connection_init within WS_CONNECTION_INIT_TIMEOUT=1 s: 4408.
    async with websockets.connect(a.ws, subprotocols=[PROTOCOL]) as conn:  # type: ignore[list-item]
        assert await closed_with(conn) == 4408
    # Subscribe before the ack: 4401.
    async with websockets.connect(a.ws, subprotocols=[PROTOCOL]) as conn:  # type: ignore[list-item]
        await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": BOARD_EVENTS, "variables": {"p": board.pipeline_id}}}))
        assert await closed_with(conn) == 4401
    # Bad or missing credentials: 4403.
    for payload in ({"Authorization": "Bearer not-a-token"}, {"apiKey": "sk_nope"}, {}):
        async with websockets.connect(a.ws, subprotocols=[PROTOCOL]) as conn:  # type: ignore[list-item]
            await conn.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert await closed_with(conn) == 4403
    # Over the per-connection cap: an error for the extra subscription, the rest keep going.
    client = await WsClient.open(a.ws, token(settings, t))
    try:
        ids = [await client.subscribe(BOARD_EVENTS, p=board.pipeline_id)
               for _ in range(WS_MAX_SUBSCRIPTIONS)]
        await asyncio.sleep(0.3)
        extra = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id)
        msg = await client.next(extra)
        assert msg["type"] == "error", msg
        assert msg["payload"] == [{"message": "Subscription limit reached"}], msg
        await board.move_some(1)
        for sid in ids:
            assert len(await client.events(sid, 1)) == 1
    finally:
        await client.close()


async def test_api_key_auth_and_the_gql_client(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    from tenants.principal import Scope

    t = await live_tenants.create()
    board = await Board.create(t, deals=1)
    start = (await board.log())[-1]
    key = await t.api_key(Scope.READ)
    transport = WebsocketsTransport(url=servers[1].ws, subprotocols=[PROTOCOL],
                                    init_payload={"X-API-Key": key})
    query = gql("""subscription($p: ID!, $after: String) {
      boardEvents(pipelineId: $p, after: $after) {
        __typename ... on DealMoved { seq fromStageId toStageId deal { id title } } } }""")
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        agen = session.subscribe(query, variable_values={"p": board.pipeline_id,
                                                         "after": str(start)})
        mover = asyncio.create_task(board.move_some(1))
        result = await asyncio.wait_for(agen.__anext__(), 15)
        await mover
        await agen.aclose()
    event = result["boardEvents"]
    assert event["__typename"] == "DealMoved" and event["seq"] == start + 1
    assert event["deal"]["id"] in board.deals


async def test_slow_consumer_gets_resync_required(
    tenants: TenantFactory, settings: Settings, db: Database,
) -> None:
    t = await tenants.create()
    board = await Board.create(t, deals=1)
    log = await board.log()
    hub = Hub(redis_url="redis://unused", channel="unused", db=db, queue_size=2)
    agen = stream(hub, t.admin, None, log[-1])
    pending = asyncio.ensure_future(agen.__anext__())
    await asyncio.sleep(0.3)  # replay done (nothing new): it now waits for wake-ups
    assert hub.subscriber_count == 1
    for seq in range(log[-1] + 1, log[-1] + 6):  # the client is not reading
        hub.dispatch({"tenant": str(t.id), "pipeline": board.pipeline_id, "seq": seq})
    item = await asyncio.wait_for(pending, 5)
    assert isinstance(item, Resync) and item.last_seq == log[-1]
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    assert hub.subscriber_count == 0


async def test_stream_dedupes_and_fills_gaps_in_process(
    tenants: TenantFactory, db: Database,
) -> None:
    """Without Redis at all: duplicate, stale and out-of-order wake-ups still yield the log."""
    t = await tenants.create()
    board = await Board.create(t, deals=2)
    start = (await board.log())[-1]
    hub = Hub(redis_url="redis://unused", channel="unused", db=db)
    agen = stream(hub, t.admin, uuid.UUID(str(_pipeline_uuid(board.pipeline_id))), start)
    await board.move_some(3)
    got: list[StageEvent] = []
    for _ in range(3):
        item = await asyncio.wait_for(agen.__anext__(), 5)  # replay after `start`
        assert isinstance(item, Delivered)
        got.append(item.event)
    await board.move_some(3)
    for seq in (start + 6, start + 6, start + 2, start + 4):  # dup, stale, out of order
        hub.dispatch({"tenant": str(t.id), "pipeline": str(got[0].pipeline_id), "seq": seq})
    for _ in range(3):
        item = await asyncio.wait_for(agen.__anext__(), 5)
        assert isinstance(item, Delivered)
        got.append(item.event)
    assert [e.seq for e in got] == [s for s in await board.log() if s > start]
    nothing = asyncio.ensure_future(agen.__anext__())
    await asyncio.sleep(0.2)
    assert not nothing.done()
    nothing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await nothing
    await agen.aclose()
    assert hub.subscriber_count == 0


def _pipeline_uuid(global_id: str) -> uuid.UUID:
    from schema.nodes import decode_id

    return decode_id(global_id, "Pipeline", field="pipelineId")


async def test_redis_restart_loses_nothing(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
    live_redis: RedisProcess,
) -> None:
    """Redis dies and comes back while subscribers on both processes watch moves happen."""
    a, b = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=3)
    start = (await board.log())[-1]
    clients = [await WsClient.open(server.ws, token(settings, t)) for server in (a, b, b)]
    try:
        sids = [await c.subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start))
                for c in clients]

        async def writer() -> None:
            for _ in range(24):
                await board.move_some(1)
                await asyncio.sleep(0.03)

        moves = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(live_redis.restart, 0.6)
        await moves
        expected = [s for s in await board.log() if s > start]
        assert len(expected) == 24
        for client, sid in zip(clients, sids, strict=True):
            got = await client.events(sid, 24, within=20)
            assert [e["seq"] for e in got] == expected
            assert await client.quiet(sid, 0.1) == []
    finally:
        for c in clients:
            await c.close()
