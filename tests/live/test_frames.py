"""Frames written to uvicorn's socket itself (schema.live.frames) arrive whole and in order,
and none is written when uvicorn would not write at once: a client that stopped reading
(the transport paused) or a closed connection gets nothing from that path.

A real uvicorn server (the API's websocket settings) on loopback, a real websockets client.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from saas.cli import UVICORN_WS_OPTIONS
from saas.deals.models import StageEvent
from saas.embedded import free_port
from saas.live.delivered import Delivered, Key
from saas.live.subscribers import NOT_DELIVERED
from schema.live.frames import RAW_SEND, RawSend, RawSocket
from schema.live.transport import DirectWriter

BIG = b'{"x":"' + b"y" * 60_000 + b'"}'


class _App:
    """On connect: frames through RawSocket until it refuses (the client does not read), then
    the same after a close; what happened is kept for the test."""

    def __init__(self) -> None:
        self.written = 0
        self.refused_when_paused = False
        self.after_close: bool | None = None
        self.done = asyncio.Event()
        self.go_on = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        raw = RawSocket.of(scope)
        assert raw is not None
        for i in range(3):
            assert raw.send_text(b'{"n":%d}' % i)
        while self.written < 2000 and raw.send_text(BIG):  # the client is not reading
            self.written += 1
        self.refused_when_paused = self.written < 2000
        self.done.set()
        await self.go_on.wait()
        await send({"type": "websocket.close", "code": 1000})
        self.after_close = raw.send_text(b'{"late":true}')


async def test_raw_frames_arrive_in_order_and_stop_when_uvicorn_would_wait() -> None:
    app = _App()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(RawSend(app), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning",
                                           **UVICORN_WS_OPTIONS))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # uvicorn.Server has no event for it
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        async with websockets.connect(f"ws://127.0.0.1:{port}/", sock=sock, max_queue=1,
                                      max_size=None) as ws:
            await asyncio.wait_for(app.done.wait(), 30)
            assert app.refused_when_paused, "the transport never paused"
            assert [await ws.recv() for _ in range(3)] == ['{"n":0}', '{"n":1}', '{"n":2}']
            for _ in range(app.written):  # every frame written, whole
                assert (await asyncio.wait_for(ws.recv(), 30)).encode() == BIG
            app.go_on.set()
            try:
                extra = await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosedOK:
                extra = None
            assert extra is None  # nothing after the close
        assert app.after_close is False
    finally:
        server.should_exit = True
        await serving


async def test_no_direct_frame_follows_the_app_s_close_while_uvicorn_s_close_waits() -> None:
    """The app closes the socket while the transport is paused: uvicorn's close waits for the
    transport, Starlette already counts the socket closed. If the transport resumes before
    that close runs, a live operation's direct write must still send nothing (it used to go
    to the socket itself). Pausing and resuming are uvicorn's own flow-control callbacks,
    called here at the moments the test needs them."""
    outcomes: dict[str, Any] = {}

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        raw = RawSocket.of(ws.scope)
        assert raw is not None
        writer = DirectWriter(None, "1", ws, raw)  # type: ignore[arg-type]
        writer.frame_key = key = Key("selection")
        writer.prefix = '{"id":"1","type":"next","payload":'
        item = Delivered(StageEvent(), None)
        item.frames = {key: '{"data":{"n":1}}'}
        outcomes["open"] = writer.deliver(item)  # written at once
        proto = ws.scope[RAW_SEND].__self__
        proto.pause_writing()
        closing = asyncio.create_task(ws.close())
        await asyncio.sleep(0)  # the close has started and waits for the transport
        proto.resume_writing()  # its wake-up is scheduled, not run yet
        outcomes["closing"] = writer.deliver(item)
        await closing

    app = Starlette(routes=[WebSocketRoute("/", endpoint)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(RawSend(app), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning",
                                           **UVICORN_WS_OPTIONS))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        received = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            try:
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosedOK:
                pass
        assert outcomes == {"open": None, "closing": NOT_DELIVERED}
        assert received == ['{"id":"1","type":"next","payload":{"data":{"n":1}}}']
    finally:
        server.should_exit = True
        await serving
