"""Shared fixtures: real PostgreSQL and Redis (external when URLs are set, else embedded).

Each test session gets a fresh database, migrated as the owner; the app connects as the
non-owner application role, exactly like production. Tests isolate themselves by creating
their own tenants.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from saas import embedded, migrate
from saas.db import Database, create_engine
from saas.settings import Settings
from tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-" + "x" * 40


def _dsn(url: str) -> str:
    """SQLAlchemy URL -> a DSN asyncpg understands."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """Owner URL of a PostgreSQL server and a Redis URL; embedded servers when unset."""
    pg_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    servers = None
    if not pg_url or not redis_url:
        servers = embedded.start(ROOT / ".data" / "test")
        pg_url = pg_url or servers.database_url
        redis_url = redis_url or servers.redis_url
    yield pg_url, redis_url
    if servers is not None:
        servers.stop()


@pytest.fixture(scope="session")
def owner_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this session, migrated to head as the owner role."""
    server_url = server_urls[0]
    name = f"saas_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_dsn(make_url(server_url).set(database="postgres")
                                          .render_as_string(hide_password=False)))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url, Settings(environment="test"))
    yield url
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(owner_url: str, server_urls: tuple[str, str]) -> Settings:
    return Settings(
        environment="test",
        database_url=owner_url,
        redis_url=server_urls[1],
        jwt_secret=TEST_SECRET,
        unsubscribe_secret=TEST_SECRET,
        # Each run gets its own queue, so runs sharing one Redis never take each other's jobs.
        arq_queue_name=f"arq:test:{uuid.uuid4().hex[:8]}",
        # Every in-process request comes from one address: only tests of the throttle
        # itself (tests/live/test_login_limits.py) use the production limit.
        login_max_per_address=1_000_000,
        # Likewise rate limits by cost: only their own tests (tests/ratelimit) spend budgets.
        rate_limit_enabled=False,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(create_engine(settings.resolved_app_database_url(), pool_size=20))
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def owner_conn(owner_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the owner role, for catalog checks and asserting 'nothing changed'."""
    conn = await asyncpg.connect(_dsn(owner_url))
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    from saas.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def tenants(db: Database, settings: Settings, client: httpx.AsyncClient) -> TenantFactory:
    return TenantFactory(db=db, settings=settings, client=client)


# The flood tests (tests/edge/test_stalls.py) run first: they bound a bystander's p99 at
# 100 ms on this 2-core box, and late in a full run what earlier tests leave behind
# (measured: right after tests/edge/test_fuzz.py, 120-180 ms, at this commit and at the
# one before the session's changes alike; 30-90 ms when they run alone) showed in the
# bystander's latency. What they measure, the floods, is unchanged.
FIRST = ("tests/edge/test_stalls.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
