"""A request whose client goes away stops: its statement is cancelled and its connection is
back in the pool within a second (a real server, a real socket, a real lock wait)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.campaigns.support import raw
from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory
from tests.live.support import ApiServer

UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) {
  deal { id title } errors { code } } }"""
WAITING = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND usename = 'saas_app' AND state = 'active' AND wait_event_type = 'Lock'"""


async def test_a_gone_client_s_statement_is_cancelled_within_a_second(
    tenants: TenantFactory, edge_server: ApiServer, owner_conn: asyncpg.Connection,
    owner_url: str,
) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    pipeline = await default_pipeline(caller)
    deal = (await caller.ok(CREATE_DEAL, input={"pipelineId": pipeline["id"], "title": "locked"}))
    deal_id = deal["createDeal"]["deal"]["id"]
    locker = await asyncpg.connect(owner_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT 1 FROM deals WHERE id = $1 FOR UPDATE", raw(deal_id))
        async with httpx.AsyncClient(base_url=edge_server.http, timeout=30) as client:
            request = asyncio.create_task(client.post("/graphql", headers=caller.headers, json={
                "query": UPDATE,
                "variables": {"input": {"dealId": deal_id, "expectedVersion": 1, "title": "x"}}}))
            deadline = time.monotonic() + 10
            while await owner_conn.fetchval(WAITING) == 0:  # the update waits on our lock
                assert time.monotonic() < deadline, "the update never reached the lock"
                await asyncio.sleep(0.05)
            request.cancel()  # the client goes away: httpx closes the connection
            gone = time.monotonic()
            while await owner_conn.fetchval(WAITING) > 0:  # noqa: ASYNC110 (polls PostgreSQL)
                await asyncio.sleep(0.02)
            stopped = time.monotonic() - gone
        assert stopped < 1.0, f"the statement ran on {stopped:.2f} s after the client left"
        await lock.rollback()
    finally:
        await locker.close()
    # Nothing was written, and the server goes on answering.
    again = await caller.ok("query($id: ID!) { node(id: $id) { ... on Deal { title version } } }",
                            id=deal_id)
    assert again["node"] == {"title": "locked", "version": 1}
