"""A real HTTP receiver on loopback (uvicorn in its own thread) and the webhook operations."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook

from tests.factories import Caller

CREATE = """
mutation($url: String!, $types: [String!]!, $pipelines: [ID!], $d: String) {
  createWebhookEndpoint(input: {url: $url, eventTypes: $types, pipelineIds: $pipelines,
                                description: $d}) {
    endpoint { id url status eventTypes pipelineIds disabledReason deliveredThroughSeq }
    secret
    errors { code field message }
  }
}"""
ENDPOINTS = """query { webhookEndpoints { id url status disabledReason disabledAt failingSince
  eventTypes description previousSecretExpiresAt } }"""
DELIVERIES = """query($e: ID!, $first: Int, $before: String, $status: WebhookDeliveryStatus) {
  webhookDeliveries(endpointId: $e, first: $first, before: $before, status: $status) {
    deliveries { id webhookId seq eventType status attempts lastStatusCode lastError
                 log { attempt statusCode latencyMs responseBody error } }
    endCursor hasMore } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    at_wall: float = 0.0  # time.time() of receipt (lag measured against commit times)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.body)
        return result


@dataclass
class Receiver:
    """Records every POST; answers `status` after `delay` seconds. `stop()` closes the port
    (connections refused), `start()` opens it again on the same port."""

    port: int = field(default_factory=free_port)
    status: int = 204
    delay: float = 0.0
    hold: threading.Event | None = None  # when set: requests wait until it is set
    received: list[Received] = field(default_factory=list)  # answered with a 2xx
    requests: int = 0  # every request, whatever the answer
    in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self._lock:
            self.in_flight += 1
            self.requests += 1
        try:
            if self.hold is not None:
                await asyncio.to_thread(self.hold.wait, 60)
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.status
            if status < 300:
                headers = {k.decode(): v.decode() for k, v in scope["headers"]}
                with self._lock:
                    self.received.append(Received(time.monotonic(), headers, body, time.time()))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body",
                        "body": b"" if status == 204 else b"ok" if status < 300 else b"no"})
        finally:
            with self._lock:
                self.in_flight -= 1

    def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", ws="none", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def ids(self) -> set[str]:
        with self._lock:
            return {r.id for r in self.received}

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


async def create_endpoint(caller: Caller, url: str, types: list[str] | None = None,
                          **extra: Any) -> tuple[dict[str, Any], str]:
    data = await caller.ok(CREATE, url=url, types=types or ["*"], **extra)
    result = data["createWebhookEndpoint"]
    assert result["errors"] == [], result
    return result["endpoint"], result["secret"]


def verify(secret: str, received: Received) -> dict[str, Any]:
    """What the receiver would do: the standardwebhooks library checks the signature."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


def first_arrivals(received: list[Received]) -> list[Received]:
    """Each webhook-id's first arrival, in arrival order (receivers deduplicate on it)."""
    seen: set[str] = set()
    result = []
    for r in received:
        if r.id not in seen:
            seen.add(r.id)
            result.append(r)
    return result
