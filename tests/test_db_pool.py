"""The pool pings a connection that sat idle before handing it out, and replaces a dead one;
the app opens its whole pool at start and no connection while it serves."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from sqlalchemy import event, text

from saas.db import Database, create_engine
from saas.settings import Settings
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import Caller, TenantFactory

PID = text("SELECT pg_backend_pid()")


async def test_a_connection_killed_while_idle_is_replaced_not_failed(
        settings: Settings, owner_conn: asyncpg.Connection) -> None:
    engine = create_engine(settings.resolved_app_database_url(), pool_size=1, max_overflow=0,
                           ping_after_idle=0.2)
    db = Database(engine)
    try:
        async with db.unit_of_work(None) as uow:
            pid = (await uow.session.execute(PID)).scalar()
        # A busy connection is handed out again without a ping: the same backend.
        async with db.unit_of_work(None) as uow:
            assert (await uow.session.execute(PID)).scalar() == pid
        # PostgreSQL drops it (a restart, an idle timeout) while it sits in the pool.
        assert await owner_conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.3)
        async with db.unit_of_work(None) as uow:
            replaced = (await uow.session.execute(PID)).scalar()
        assert replaced is not None and replaced != pid
    finally:
        await engine.dispose()


async def test_the_app_opens_its_pool_at_start_and_no_connection_under_load(
        settings: Settings, tenants: TenantFactory) -> None:
    from saas.app import create_app

    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    for i in range(3):
        await create_deal(admin, pipeline["id"], f"deal {i}")
    app = create_app(settings.model_copy(update={"db_pool_size": 4, "board_cache_entries": 0}))
    opened: list[int] = []
    event.listen(app.state.services.db.engine.sync_engine, "connect",
                 lambda *_: opened.append(1))
    async with app.router.lifespan_context(app):
        assert len(opened) == 4  # the whole pool, before the first request
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://test")
        caller = Caller(client, admin.headers)
        board = "query($p: ID!) { board(pipelineId: $p) { columns { deals { id } } } }"
        deals = "query { deals(first: 100) { totalCount edges { node { id history { seq } } } } }"
        # Four times the pool's size in flight at once, through compiled reads, resolvers
        # and their concurrent DataLoader batches: they wait for connections, none is opened.
        results = await asyncio.gather(*(caller.ok(board, p=pipeline["id"]) if i % 2
                                         else caller.ok(deals) for i in range(16)))
        await client.aclose()
    assert [len(r["board"]["columns"]) if "board" in r else r["deals"]["totalCount"]
            for r in results] == [3 if i % 2 == 0 else 8 for i in range(16)]
    assert len(opened) == 4
