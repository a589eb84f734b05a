"""A minimal graphql-transport-ws client (websockets) for the live benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"
BOARD_EVENTS = """subscription($p: ID!, $after: String) {
  boardEvents(pipelineId: $p, after: $after) { __typename ... on DealEvent { seq } } }"""


class WsClient:
    """One websocket; `received[sid]` collects (seq, monotonic receipt time).

    Frames must be text (graphql-transport-ws); a binary frame counts as an error.
    """

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.received: dict[str, list[tuple[int, float]]] = {}
        self.errors: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str) -> WsClient:
        conn = await connect(url, subprotocols=[PROTOCOL], open_timeout=30,  # type: ignore[list-item]
                             ping_interval=None, max_queue=None)
        await conn.send(json.dumps({"type": "connection_init",
                                    "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await asyncio.wait_for(conn.recv(), 30))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        return cls(conn)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.conn:
                now = time.monotonic()
                msg = orjson.loads(raw)  # several times cheaper than json for the client
                kind = msg.get("type")
                if not isinstance(raw, str):
                    self.errors.append({"type": "binary frame", "message": msg})
                elif kind == "ping":
                    await self.conn.send('{"type":"pong"}')
                elif kind == "next" and "errors" not in msg["payload"]:
                    data = next(iter(msg["payload"]["data"].values()))
                    self.received.setdefault(msg["id"], []).append((data.get("seq"), now))
                    self.arrived.set()
                elif kind in ("next", "error", "complete"):
                    self.errors.append(msg)

    async def subscribe(self, query: str = BOARD_EVENTS, **variables: Any) -> str:
        self._next_id += 1
        sid = str(self._next_id)
        self.received[sid] = []
        await self.conn.send(json.dumps({"id": sid, "type": "subscribe",
                                         "payload": {"query": query, "variables": variables}}))
        return sid

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def open_many(url: str, token: str, n: int, *, pipeline: str, after: str | None,
                    batch: int = 100) -> list[tuple[WsClient, str]]:
    """n connections with one board subscription each, opened in batches."""
    out: list[tuple[WsClient, str]] = []
    for i in range(0, n, batch):
        clients = await asyncio.gather(*(WsClient.open(url, token)
                                         for _ in range(min(batch, n - i))))
        for c in clients:
            out.append((c, await c.subscribe(p=pipeline, after=after)))
    return out
