"""Mutations waiting on a lock hold at most half of the pool: reads still get connections."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from saas.settings import Settings
from tests.deals.ops import MOVE, create_deal, default_pipeline, stage_ids
from tests.factories import Caller, TenantFactory

BOARD = "query($p: ID!) { board(pipelineId: $p) { columns { deals { id version } } } }"


async def test_reads_are_answered_while_every_writer_waits_on_a_lock(
        settings: Settings, tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    from saas.app import create_app

    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    deals = [await create_deal(admin, pipeline["id"], f"deal {i}") for i in range(8)]
    app = create_app(settings.model_copy(update={"db_pool_size": 4, "board_cache_entries": 0}))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://test")
        caller = Caller(client, admin.headers)
        # The tenant's event counter is locked: every move blocks inside its transaction.
        lock = owner_conn.transaction()
        await lock.start()
        await owner_conn.execute("SELECT 1 FROM tenant_counters WHERE tenant_id = $1 "
                                 "FOR UPDATE", t.id)
        moves: list[asyncio.Task[Any]] = [asyncio.create_task(caller.ok(
            MOVE, deal=d["id"], to=stages["Proposal"], v=1)) for d in deals]
        try:
            await asyncio.sleep(1.0)
            assert not any(m.done() for m in moves)
            # Eight blocked moves, a pool of four: reads still come back.
            board = await asyncio.wait_for(caller.ok(BOARD, p=pipeline["id"]), 20)
            assert sum(len(c["deals"]) for c in board["board"]["columns"]) == 8
        finally:
            await lock.rollback()
        done = await asyncio.wait_for(asyncio.gather(*moves), 60)
        await client.aclose()
    assert all(m["moveDeal"]["errors"] == [] for m in done)
