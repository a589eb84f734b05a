"""The websocket floor of live delivery: what one frame to N websockets costs on our stack.

    python -m bench.live_latency --subscribers 1000 --floor    # the API, then this floor
    python -m bench.ws_floor serve                            # the floor server alone

A bare ASGI app on the API's uvicorn configuration (uvloop, httptools, the same websocket
implementation and per-message-deflate setting: `saas.cli.UVICORN_WS_OPTIONS`). It speaks
just enough graphql-transport-ws for `bench.wsclient` (connection_init -> connection_ack,
subscribe, ping/pong, complete). `POST /fire {"seq": n}` answers at once and then sends
every subscriber the `next` frame a live board subscriber of the benchmark receives
(`{"boardEvents": {"__typename": "DealMoved", "seq": n}}`, with the subscriber's
operation id) through its connection's ASGI `send`, one after the other, in one task.
There is no GraphQL, database, Redis or rendering: the latency and CPU of this server are
the floor for the API's live fan-out in one process, with the benchmark's client on the
same cores. `GET /stats` returns the server-side time of each fan-out loop.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import orjson

from saas.cli import UVICORN_WS_OPTIONS

Send = Any
Receive = Any
Scope = dict[str, Any]


class FloorApp:
    def __init__(self) -> None:
        self.subscribers: dict[tuple[int, str], tuple[Send, str]] = {}
        self.fanout_s: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/fire":
            seq = int(orjson.loads(body)["seq"])
            await _respond(send, orjson.dumps({"seq": seq}))
            data = orjson.dumps({"data": {"boardEvents": {"__typename": "DealMoved",
                                                          "seq": seq}}}).decode()
            start = time.perf_counter()
            for target, prefix in tuple(self.subscribers.values()):
                await target({"type": "websocket.send", "text": f"{prefix}{data}}}"})
            self.fanout_s.append(time.perf_counter() - start)
        elif path == "/stats":
            await _respond(send, orjson.dumps({"fanout_s": self.fanout_s,
                                               "subscribers": len(self.subscribers)}))
        else:  # /readyz and anything else
            await _respond(send, b"{}")

    async def _websocket(self, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        mine: list[tuple[int, str]] = []
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                msg = orjson.loads(message.get("text") or message.get("bytes") or b"{}")
                kind = msg.get("type")
                if kind == "connection_init":
                    await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                elif kind == "ping":
                    await send({"type": "websocket.send", "text": '{"type":"pong"}'})
                elif kind == "subscribe":
                    key = (id(send), str(msg["id"]))
                    prefix = orjson.dumps({"id": key[1], "type": "next"}).decode()[:-1]
                    self.subscribers[key] = (send, f'{prefix},"payload":')
                    mine.append(key)
                elif kind == "complete":
                    self.subscribers.pop((id(send), str(msg["id"])), None)
        finally:
            for key in mine:
                self.subscribers.pop(key, None)


async def _respond(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def serve(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(FloorApp(), host=host, port=port, loop="uvloop", http="httptools",
                lifespan="off", log_level="warning", access_log=False, **UVICORN_WS_OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8100")))
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
