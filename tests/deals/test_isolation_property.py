"""Property: random operations by users of several tenants, with forged ids of the others,
never read or change another tenant's data."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.deals.ops import BOARD, HISTORY, MOVE, create_deal, default_pipeline, stage_ids
from tests.factories import TenantFactory, snapshot

UPDATE = """mutation($d: ID!) { updateDeal(input: {dealId: $d, expectedVersion: 1,
  title: "stolen"}) { deal { id } errors { code } } }"""
CREATE = """mutation($p: ID!) { createDeal(input: {pipelineId: $p, title: "planted"}) {
  deal { id } errors { code } } }"""
ACTIVITY = """mutation($d: ID!) { createActivity(input: {dealId: $d, kind: CALL, subject: "x"}) {
  activity { id } errors { code } } }"""
LIST = "query { deals(first: 100) { edges { node { id title } } } stageEvents(first: 1000) { events { dealId } } }"

OPERATIONS = ("node", "history", "board", "move", "update", "create", "activity", "list")


@pytest.fixture(scope="module")
async def tenants_world(db: Any, settings: Any, app: Any) -> list[dict[str, Any]]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://test")
    factory = TenantFactory(db=db, settings=settings, client=client)
    world = []
    for _ in range(3):
        t = await factory.create()
        pipeline = await default_pipeline(t.admin_caller)
        deal = await create_deal(t.admin_caller, pipeline["id"], f"deal of {t.slug}")
        world.append({"t": t, "pipeline": pipeline, "stages": stage_ids(pipeline), "deal": deal})
    yield world  # type: ignore[misc]
    await client.aclose()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(OPERATIONS),
                                st.integers(0, 2)), min_size=1, max_size=6))
async def test_cross_tenant_operations_never_leak_or_write(
    tenants_world: list[dict[str, Any]], owner_conn: asyncpg.Connection,
    steps: list[tuple[int, str, int]],
) -> None:
    for actor_i, op, victim_i in steps:
        if actor_i == victim_i:
            continue
        actor, victim = tenants_world[actor_i], tenants_world[victim_i]
        caller = actor["t"].admin_caller
        before = await snapshot(owner_conn, victim["t"].id)
        deal_id, pipeline_id = victim["deal"]["id"], victim["pipeline"]["id"]
        if op == "node":
            body = await caller.gql("query($id: ID!) { node(id: $id) { id } }", id=deal_id)
            assert body["data"]["node"] is None
        elif op == "history":
            body = await caller.gql(HISTORY, id=deal_id)
            assert body["data"]["node"] is None
        elif op == "board":
            body = await caller.gql(BOARD, p=pipeline_id, n=5)
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        elif op == "move":
            body = await caller.gql(MOVE, deal=deal_id, to=victim["stages"]["Proposal"], v=1)
            assert body["data"]["moveDeal"]["errors"][0]["code"] == "NOT_FOUND"
        elif op == "update":
            body = await caller.gql(UPDATE, d=deal_id)
            assert body["data"]["updateDeal"]["errors"][0]["code"] == "NOT_FOUND"
        elif op == "create":
            body = await caller.gql(CREATE, p=pipeline_id)
            assert body["data"]["createDeal"]["errors"][0]["code"] == "NOT_FOUND"
        elif op == "activity":
            body = await caller.gql(ACTIVITY, d=deal_id)
            assert body["data"]["createActivity"]["errors"][0]["code"] == "NOT_FOUND"
        else:
            body = await caller.gql(LIST)
            ids = {e["node"]["id"] for e in body["data"]["deals"]["edges"]}
            assert victim["deal"]["id"] not in ids
            assert ids == {actor["deal"]["id"]}
            assert {e["dealId"] for e in body["data"]["stageEvents"]["events"]} == ids
        assert await snapshot(owner_conn, victim["t"].id) == before, (op, actor_i, victim_i)
