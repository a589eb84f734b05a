"""Direct fan-out: caught-up subscribers are written to by one task per board, and the
hand-over between that task and each subscriber's own stream (replay, gap fill, a slow
client) never loses, repeats or reorders an event."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from saas.settings import Settings
from tests.deals.ops import create_deal
from tests.factories import TenantFactory
from tests.live.support import BOARD_EVENTS, ApiServer, WsClient, metric
from tests.live.test_live import Board, token

# A large frame per event (about 9 KB; four of them per event on the slow connection): a
# client that stops reading fills the socket buffers (MBs on loopback), and the server's
# writes to it have to wait, within a few dozen events.
WIDE = "subscription($p: ID!, $after: String) { boardEvents(pipelineId: $p, after: $after) {" \
    " __typename ... on DealEvent { seq " + " ".join(
        f"d{i}: deal {{ title }}" for i in range(28)) + " } } }"


def _seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


async def _slow_client(url: str, jwt: str) -> WsClient:
    """A client with the smallest receive buffer, so that not reading is felt at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await WsClient.open(url, jwt, sock=sock, max_queue=1)


async def test_subscribers_joining_at_old_cursors_and_a_slow_one_get_every_event_once(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, _ = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=0)
    for i in range(4):  # long titles: large frames for the wide selection
        deal = await create_deal(t.admin_caller, board.pipeline_id, f"{i} " + "x" * 290)
        board.deals[deal["id"]] = deal["version"]
    start = (await board.log())[-1]
    jwt = token(settings, t)
    direct_before = await metric(a.http, "saas_live_direct_writes_total")
    socket_before = await metric(a.http, "saas_live_socket_writes_total")
    behind_before = await metric(a.http, "saas_live_handbacks_total", reason="behind")

    early = [await WsClient.open(a.ws, jwt) for _ in range(4)]
    subs: list[tuple[WsClient, str, int]] = []
    for c in early:
        subs.append((c, await c.subscribe(BOARD_EVENTS, p=board.pipeline_id,
                                          after=str(start)), start))
    slow = await _slow_client(a.ws, jwt)
    slow_sids = [await slow.subscribe(WIDE, p=board.pipeline_id, after=str(start))
                 for _ in range(4)]
    late: list[WsClient] = []
    moves = 90
    try:
        await board.move_some(3)
        for sid in slow_sids:
            await slow.events(sid, 3)  # caught up (in the group) before it stalls
        slow.reading.clear()

        async def join_while_moving() -> None:
            # New subscribers at old cursors (replay, then hand-over to the group) while
            # the writer keeps moving deals.
            for k in range(6):
                await asyncio.sleep(0.05 + 0.03 * k)
                log = await board.log(start)
                cursor = log[len(log) // 3] if k % 2 else start
                c = await WsClient.open(a.ws, jwt)
                late.append(c)
                subs.append((c, await c.subscribe(BOARD_EVENTS, p=board.pipeline_id,
                                                  after=str(cursor)), cursor))

        async def writer() -> None:
            for _ in range(moves - 3):
                await board.move_some(1)
                await asyncio.sleep(0.005)

        await asyncio.gather(writer(), join_while_moving())
        behind_after = await metric(a.http, "saas_live_handbacks_total", reason="behind")
        slow.reading.set()
        log = await board.log(start)
        assert len(log) == moves
        for client, sid, cursor in subs:
            expected = [s for s in log if s > cursor]
            got = await client.events(sid, len(expected), within=30)
            assert _seqs(got) == expected
            assert await client.quiet(sid, 0.05) == []
        for sid in slow_sids:
            got = await slow.events(sid, moves - 3, within=30)
            assert _seqs(got) == log[3:]
            assert all(e["d27"]["title"].startswith(tuple("0123")) for e in got)
            assert await slow.quiet(sid, 0.05) == []
        # The group wrote most events, to the sockets themselves (schema.live.frames) while
        # they took them at once; the slow client was handed back at least once.
        assert await metric(a.http, "saas_live_direct_writes_total") - direct_before > moves
        assert await metric(a.http, "saas_live_socket_writes_total") - socket_before > moves
        assert behind_after > behind_before
    finally:
        await asyncio.gather(*(c.close() for c in [*early, *late, slow]))


async def test_complete_stops_direct_writes_at_once_and_the_id_can_be_reused(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, _ = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=2)
    start = (await board.log())[-1]
    client = await WsClient.open(a.ws, token(settings, t))
    try:
        sid = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start))
        await board.move_some(3)
        got = await client.events(sid, 3)
        await client.complete(sid)
        await board.move_some(3)
        assert await client.quiet(sid, 0.3) == []  # nothing after the client's complete
        # The same id again, from the last cursor it saw: the three it missed, then live.
        client._next_id -= 1
        again = await client.subscribe(BOARD_EVENTS, p=board.pipeline_id,
                                       after=got[-1]["cursor"])
        assert again == sid
        await board.move_some(2)
        log = await board.log(start)
        assert _seqs(await client.events(sid, 5)) == log[3:]
        assert await client.quiet(sid, 0.1) == []
    finally:
        await client.close()
