"""Size limits protect the process: huge bodies and strings are refused at once without a
database connection, slow bodies are cut off, refused documents leave no memory behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from sqlalchemy import event

from saas.db import Database
from tests.factories import TenantFactory
from tests.live.support import ApiServer

MiB = 1024 * 1024
SEARCH = "query($s: String) { deals(filter: {search: $s}) { totalCount } }"


@contextlib.contextmanager
def checkouts(db: Database) -> Iterator[list[int]]:
    """Every connection the pool hands out while the block runs, and the most at once."""
    seen = [0, 0]  # total checkouts, most checked out at once

    def on_checkout(*_: Any) -> None:
        seen[0] += 1
        seen[1] = max(seen[1], db.engine.pool.checkedout())  # type: ignore[attr-defined]

    event.listen(db.engine.sync_engine, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "checkout", on_checkout)


async def _chunks(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    yield b'{"query": "{ __typename }", "variables": {"s": "'
    sent = 0
    while sent < total:
        yield b"s" * chunk
        sent += chunk
    yield b'"}}'


async def test_a_100_mib_body_and_a_1_mib_search_are_refused_at_once_without_a_connection(
    tenants: TenantFactory, client: httpx.AsyncClient, app: Any
) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    await caller.gql("{ me { tenantId } }")  # the caller's authorisation state is cached
    db = app.state.services.db
    headers = {**caller.headers, "content-type": "application/json"}
    with checkouts(db) as seen:
        start = time.perf_counter()
        declared = await client.post("/graphql", content=_chunks(100 * MiB), headers={
            **headers, "content-length": str(100 * MiB + 60)})
        declared_s = time.perf_counter() - start
        start = time.perf_counter()
        streamed = await client.post("/graphql", content=_chunks(100 * MiB), headers=headers)
        streamed_s = time.perf_counter() - start
        start = time.perf_counter()
        search = await client.post("/graphql", json={"query": SEARCH, "variables": {
            "s": "s" * (MiB - 100)}}, headers=caller.headers)
        search_s = time.perf_counter() - start
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json()["errors"][0]["extensions"] == {"code": "REQUEST_TOO_LARGE",
                                                         "limit": MiB}
    assert search.status_code == 200  # application/json: a coercion error is a 200
    assert search.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "s"}
    assert "data" not in search.json()
    assert max(declared_s, streamed_s, search_s) < 1.0, (declared_s, streamed_s, search_s)
    assert seen == [0, 0], "a refused request took a database connection"


async def test_search_text_is_limited_to_its_documented_length(tenants: TenantFactory) -> None:
    t = await tenants.create()
    body = await t.admin_caller.gql(SEARCH, s="s" * 201)
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "filter.search"}
    fine = await t.admin_caller.gql(SEARCH, s="s" * 200)
    assert fine["data"] == {"deals": {"totalCount": 0}}


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _raw_post(port: int, body: bytes, *, declare: int | None = None,
                    pause_after: int | None = None, pause: float = 0.0,
                    until_closed: bool = False) -> tuple[bytes, float]:
    """POST over a raw socket; returns the status line and how long the answer took (with
    `until_closed`, until the server closed the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    length = declare if declare is not None else len(body)
    start = time.perf_counter()
    writer.write(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(length).encode() + b"\r\n\r\n")
    part = body if pause_after is None else body[:pause_after]

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(part)
            await writer.drain()
            if pause_after is not None:
                await asyncio.sleep(pause)

    sender = asyncio.create_task(send())
    try:
        status = await asyncio.wait_for(reader.readline(), 30)
        if until_closed:
            while await asyncio.wait_for(reader.read(65536), 10):
                pass
        took = time.perf_counter() - start
    finally:
        sender.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return status, took


async def test_sixty_distinct_8_mib_documents_leave_no_memory_behind(
    edge_server: ApiServer,
) -> None:
    assert edge_server.proc is not None
    pid, port = edge_server.proc.pid, edge_server.port
    await _raw_post(port, b'{"query": "{ __typename }"}')  # warm
    before = _rss(pid)
    for i in range(60):
        document = ("query Q%d { " % i + "__typename " * (8 * MiB // 11) + "}").encode()
        status, _ = await _raw_post(port, json.dumps({"query": document.decode()}).encode())
        assert status.startswith(b"HTTP/1.1 413"), status
    grown = _rss(pid) - before
    assert grown < 100 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"


async def test_a_two_million_token_document_is_refused_within_100_ms(
    edge_server: ApiServer,
) -> None:
    document = json.dumps({"query": "{ " + "a " * 2_000_000 + "}"}).encode()
    timings = []
    for _ in range(5):
        status, took = await _raw_post(edge_server.port, document)
        assert status.startswith(b"HTTP/1.1 413"), status
        timings.append(took)
    assert min(timings) < 0.1, timings  # the best of five: the box is shared


async def test_slow_bodies_are_cut_off_after_the_read_timeout(edge_server: ApiServer) -> None:
    body = json.dumps({"query": "{ __typename }"}).encode()
    results = await asyncio.gather(*(
        _raw_post(edge_server.port, body, declare=len(body) + 500, pause_after=5, pause=60,
                  until_closed=True)
        for _ in range(50)))
    timeout = 2.0  # BODY_READ_TIMEOUT_SECONDS of the edge server (tests/edge/conftest.py)
    for status, took in results:
        assert status.startswith(b"HTTP/1.1 408"), status
        assert timeout - 0.2 < took < timeout + 5, took
    fine, _ = await _raw_post(edge_server.port, body)
    assert fine.startswith(b"HTTP/1.1 200")
