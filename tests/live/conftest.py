"""Fixtures of the live tests: a private Redis and two real API server processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from saas.db import Database
from saas.settings import Settings
from tests.conftest import TEST_SECRET
from tests.factories import TenantFactory
from tests.live.support import ApiServer, RedisProcess

WS_MAX_SUBSCRIPTIONS = 4


@pytest.fixture(scope="session")
def live_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path_factory.mktemp("live-redis"))
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def servers(owner_url: str, live_redis: RedisProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two API processes (A, B) sharing PostgreSQL and the private Redis."""
    logs = tmp_path_factory.mktemp("live-servers")
    env = {
        "ENVIRONMENT": "test", "DATABASE_URL": owner_url, "REDIS_URL": live_redis.url,
        "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET,
        "WS_CONNECTION_INIT_TIMEOUT": "1", "WS_MAX_SUBSCRIPTIONS": str(WS_MAX_SUBSCRIPTIONS),
        "LOG_LEVEL": "WARNING", "LIVE_BACKOFF_MAX": "0.5",
    }
    pair = (ApiServer(env, logs / "a.log"), ApiServer(env, logs / "b.log"))
    try:
        for server in pair:
            server.start()
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture
async def http_a(servers: tuple[ApiServer, ApiServer]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=servers[0].http, timeout=20) as client:
        yield client


@pytest.fixture
def live_tenants(db: Database, settings: Settings, http_a: httpx.AsyncClient) -> TenantFactory:
    """Tenants whose callers post GraphQL to server A over real HTTP."""
    return TenantFactory(db=db, settings=settings, client=http_a)
