"""Fixtures of the compiled-reads tests: the three apps and the tenants they read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from saas.settings import Settings
from tests.compiled.world import World, build
from tests.factories import TenantFactory


@pytest.fixture(scope="package")
async def apps(settings: Settings, app: Any) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    from saas.app import create_app

    small = {"db_pool_size": 3, "db_max_overflow": 0, "board_cache_entries": 0}
    resolvers = create_app(settings.model_copy(update={**small, "compiled_reads": False}))
    compiled = create_app(settings.model_copy(update=small))
    clients = {}
    async with resolvers.router.lifespan_context(resolvers), \
            compiled.router.lifespan_context(compiled):
        for name, application in (("resolvers", resolvers), ("compiled", compiled),
                                  ("cached", app)):
            clients[name] = httpx.AsyncClient(transport=httpx.ASGITransport(app=application),
                                              base_url="http://test")
        yield clients
        for client in clients.values():
            await client.aclose()


@pytest.fixture(scope="package")
async def worlds(db: Any, settings: Settings, app: Any,
                 owner_conn: asyncpg.Connection) -> AsyncIterator[list[World]]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    factory = TenantFactory(db=db, settings=settings, client=client)
    yield [await build(factory, owner_conn, deals=24), await build(factory, owner_conn, deals=3)]
    await client.aclose()
