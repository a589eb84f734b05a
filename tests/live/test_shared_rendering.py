"""Live events rendered once per selection: every subscriber still gets its own payload.

The websocket handler (schema.live.transport) executes a live event's selection once per
(event, tenant, document, selection variables) and sends the same encoded payload to all
subscribers of it. These tests hold it to "exactly what each subscriber got before".
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from saas.db import Database
from saas.live.hub import Hub
from saas.settings import Settings
from schema.context import Context, Services
from schema.live.rendering import live_schema, shareable_types
from schema.root import build_schema
from tests.factories import TenantFactory
from tests.live.support import BOARD_EVENTS, ApiServer, WsClient
from tests.live.test_live import Board, token

MINIMAL = """subscription($p: ID!, $after: String) {
  boardEvents(pipelineId: $p, after: $after) { __typename ... on DealEvent { seq dealId } } }"""
ALIASED = """subscription S($p: ID!, $after: String, $withDeal: Boolean!) {
  board: boardEvents(pipelineId: $p, after: $after) {
    kind: __typename
    ... on DealEvent { at: cursor toStageId deal @include(if: $withDeal) { title version } }
  } }"""
DEAL_EVENTS_FULL = """subscription($after: String) { dealEvents(after: $after) {
  __typename ... on DealEvent { cursor seq occurredAt dealId pipelineId fromStageId toStageId
    amount currency actor { userId apiKeyId }
    deal { id title amount currency temperature version stageId pipelineId owner { id name } }
  } } }"""


def test_live_types_have_nothing_per_subscriber() -> None:
    """Sharing is only sound while the event types are plain data (no resolvers)."""
    assert shareable_types() == []


async def _collect(agen: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        result = await asyncio.wait_for(agen.__anext__(), 10)
        out.append((result.data, [e.formatted for e in result.errors or []]))
    return out


async def test_shared_renderings_equal_per_subscriber_execution(
    tenants: TenantFactory, settings: Settings, db: Database,
) -> None:
    """In one process, the same subscriptions through the plain schema (one execution per
    subscriber, as before) and through the shared-rendering one give identical results."""
    t = await tenants.create()
    board = await Board.create(t, deals=2)
    start = (await board.log())[-1]
    await board.move_some(4)
    hub = Hub(redis_url="redis://unused", channel="unused", db=db)
    services = Services(settings=settings, db=db, hub=hub)
    schema = build_schema(settings)
    shared = live_schema(schema)
    assert shared is not schema and live_schema(schema) is shared

    def context() -> Context:
        return Context(services=services, principal=t.admin)

    cases: list[tuple[str, dict[str, Any]]] = [
        (BOARD_EVENTS, {"p": board.pipeline_id, "after": str(start)}),
        (MINIMAL, {"p": board.pipeline_id, "after": str(start)}),
        (ALIASED, {"p": board.pipeline_id, "after": str(start), "withDeal": True}),
        (ALIASED, {"p": board.pipeline_id, "after": str(start), "withDeal": False}),
        (DEAL_EVENTS_FULL, {"after": str(start)}),
    ]
    for query, variables in cases:
        plain = await schema.subscribe(query, variable_values=variables,
                                       context_value=context())
        expected = await _collect(plain, 4)
        await plain.aclose()  # type: ignore[attr-defined]
        for _ in range(3):  # the first renders, the others reuse
            agen = await shared.subscribe(query, variable_values=variables,
                                          context_value=context())
            assert await _collect(agen, 4) == expected
            await agen.aclose()  # type: ignore[attr-defined]
        assert all(data is not None for data, _ in expected)
    results = []
    for variables in (cases[2][1], cases[3][1]):  # @include(if: $withDeal) true / false
        agen = await shared.subscribe(ALIASED, variable_values=variables,
                                      context_value=context())
        results.append((await _collect(agen, 1))[0][0]["board"])
        await agen.aclose()  # type: ignore[attr-defined]
    assert results[0]["kind"] == "DealMoved" and "deal" in results[0]
    assert "deal" not in results[1]
    assert hub.renderings.hits >= 2 * 4 * len(cases)
    gc.collect()  # a closed stream's innermost generator is finalised by the collector
    await asyncio.sleep(0.05)
    assert hub.subscriber_count == 0


async def test_different_selections_on_one_board_each_get_their_own_payload(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, _ = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=2)
    start = (await board.log())[-1]
    jwt = token(settings, t)
    full, minimal = await WsClient.open(a.ws, jwt), await WsClient.open(a.ws, jwt)
    try:
        s_full = await full.subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start))
        s_min = await minimal.subscribe(MINIMAL, p=board.pipeline_id, after=str(start))
        s_both = await minimal.subscribe(BOARD_EVENTS, p=board.pipeline_id, after=str(start))
        await board.move_some(5)
        expected = [s for s in await board.log() if s > start]
        got_full = await full.events(s_full, 5)
        got_min = await minimal.events(s_min, 5)
        got_both = await minimal.events(s_both, 5)
        assert [e["seq"] for e in got_full] == expected
        assert [set(e) for e in got_full] == [
            {"__typename", "cursor", "seq", "dealId", "fromStageId", "toStageId", "deal",
             "actor"}] * 5
        assert got_full[-1]["deal"]["id"] == got_full[-1]["dealId"]
        assert got_full[-1]["deal"]["version"] == board.deals[got_full[-1]["dealId"]]
        assert got_min == [{"__typename": "DealMoved", "seq": e["seq"], "dealId": e["dealId"]}
                           for e in got_full]
        assert got_both == got_full
        assert full.binary_frames == minimal.binary_frames == 0
        for client, sid in ((full, s_full), (minimal, s_min), (minimal, s_both)):
            assert await client.quiet(sid, 0.2) == []
    finally:
        await full.close()
        await minimal.close()


async def test_many_subscribers_of_one_selection_get_identical_complete_streams(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    a, b = servers
    t = await live_tenants.create()
    board = await Board.create(t, deals=3)
    start = (await board.log())[-1]
    jwt = token(settings, t)
    clients = [await WsClient.open((a if i % 2 else b).ws, jwt) for i in range(16)]
    try:
        # Half start at the board's cursor, half further back: different variables,
        # same selection (the cursor does not change how an event renders).
        sids = [await c.subscribe(BOARD_EVENTS, p=board.pipeline_id,
                                  after=str(start if i % 2 else start - 2))
                for i, c in enumerate(clients)]

        async def writer() -> None:
            for _ in range(12):
                await board.move_some(1)
                await asyncio.sleep(0.02)

        await writer()
        log = await board.log()
        moves = [s for s in log if s > start]
        streams = []
        for i, (client, sid) in enumerate(zip(clients, sids, strict=True)):
            n = len(moves) + (0 if i % 2 else 2)
            got = await client.events(sid, n, within=20)
            assert [e["seq"] for e in got] == [s for s in log if s > (start if i % 2
                                                                       else start - 2)]
            assert await client.quiet(sid, 0.1) == []
            streams.append(got[-len(moves):])
        assert all(s == streams[0] for s in streams)  # same events, same payloads
        assert all(c.binary_frames == 0 for c in clients)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_tenants_with_the_same_cursors_and_query_never_share(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    """Two fresh tenants have the same sequence numbers; their subscribers use the same
    document: each must see only its own tenant's events."""
    a, _ = servers
    ta, tb = await live_tenants.create(), await live_tenants.create()
    board_a, board_b = await Board.create(ta, deals=2), await Board.create(tb, deals=2)
    start_a, start_b = (await board_a.log())[-1], (await board_b.log())[-1]
    assert start_a == start_b
    ca, cb = (await WsClient.open(a.ws, token(settings, ta)),
              await WsClient.open(a.ws, token(settings, tb)))
    try:
        sa = await ca.subscribe(BOARD_EVENTS, p=board_a.pipeline_id, after=str(start_a))
        sb = await cb.subscribe(BOARD_EVENTS, p=board_b.pipeline_id, after=str(start_b))
        for _ in range(3):
            await board_a.move_some(1)
            await board_b.move_some(1)
        got_a, got_b = await ca.events(sa, 3), await cb.events(sb, 3)
        assert [e["seq"] for e in got_a] == [e["seq"] for e in got_b]
        assert {e["dealId"] for e in got_a} <= set(board_a.deals)
        assert {e["dealId"] for e in got_b} <= set(board_b.deals)
        assert {e["deal"]["id"] for e in got_b} <= set(board_b.deals)
        assert await ca.quiet(sa, 0.2) == [] and await cb.quiet(sb, 0.1) == []
    finally:
        await ca.close()
        await cb.close()
