"""The pool pings a connection that sat idle before handing it out, and replaces a dead one."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from saas.db import Database, create_engine
from saas.settings import Settings

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
